"""Spec §7: published pages show no count from 1 to 10, and a hidden count cannot be worked out from totals."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from pipelines.demo.generator import write_inbox
from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.dashboard import dashboard_data
from tests.conftest import Refresh

SMALL_CLINIC = "smallville"
COUNT_COLUMNS = re.compile(r".*_count$|inductions_reaching")


def append_small_clinic(inbox, responders: int = 7, patients: int = 20) -> None:
    """Add a clinic whose 20 depression patients complete an induction; exactly `responders` respond on PHQ-9."""
    start = date(2026, 3, 2)
    with open(inbox / "patients.csv", "a") as file:
        for n in range(patients):
            file.write(f"SV{n:03d},{SMALL_CLINIC},1970,F,depression,self\n")
    with open(inbox / "infusions.csv", "a") as file:
        for n in range(patients):
            for k in range(6):
                day = start + timedelta(days=2 * k)
                file.write(f"SV{n:03d},{day.isoformat()},0.5,40,,,,,,,,,\n")
    with open(inbox / "assessments.csv", "a") as file:
        for n in range(patients):
            end_score = 8 if n < responders else 16  # from 20: -60% responds, -20% does not
            file.write(f"SV{n:03d},phq9,{start.isoformat()},20,,,,,,,,,\n")
            file.write(f"SV{n:03d},phq9,{(start + timedelta(days=14)).isoformat()},{end_score},,,,,,,,,\n")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    write_inbox(root / "inbox", patients=1500, clinics=3, seed=11, end_date=date(2026, 6, 30), years=2.0)
    append_small_clinic(root / "inbox")
    refresh = Refresh(root / "out")
    refresh.ok(root / "inbox", as_of="2026-06-30T00:00:00")
    return refresh


def test_the_small_clinic_really_has_seven_responders_in_the_warehouse(published):
    [row] = published.rows(
        "select evaluable_count, responder_count from marts.response_rates "
        "where dimension = 'clinic' and dimension_value = ? and instrument = 'phq9' "
        "and series_kind = 'induction'",
        SMALL_CLINIC,
    )
    assert row == {"evaluable_count": 20, "responder_count": 7}


def test_no_published_aggregate_holds_a_count_from_one_to_ten(published):
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        data = dashboard_data(con, OutcomeRules(), "2026-06-30")
    for name, frame in vars(data).items():
        if not isinstance(frame, pl.DataFrame):
            continue
        for column in frame.columns:
            if COUNT_COLUMNS.fullmatch(column):
                small = frame.filter(pl.col(column).is_between(1, 10))
                assert small.is_empty(), (name, column, small.head(3).to_dicts())


def test_the_small_clinics_response_rate_is_neither_shown_nor_recoverable(published):
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        rates = dashboard_data(con, OutcomeRules(), "2026-06-30").response_rates
    clinics = rates.filter(
        (pl.col("dimension") == "clinic") & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    )
    small = clinics.filter(pl.col("dimension_value") == SMALL_CLINIC).row(0, named=True)
    assert small["responder_count"] is None and small["response_rate"] is None and small["response_ci_low"] is None
    network = rates.filter(
        (pl.col("dimension") == "network") & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    ).row(0, named=True)
    visible = clinics["responder_count"].drop_nulls().sum()
    # A second clinic is hidden too, so the network total minus the clinics shown is not seven.
    assert clinics["responder_count"].null_count() >= 2
    assert network["responder_count"] - visible != 7


def test_the_pages_never_show_the_small_clinics_rate_or_responder_count(published):
    page = (published.reports / f"clinic-{SMALL_CLINIC}.html").read_text()
    network_page = (published.reports / "network.html").read_text()
    # 7 of 20 is 35%: it appears on no tile, and the clinic is absent from the clinics' funnel plot.
    tiles = page.split('<section class="tiles">', 1)[1].split("</section>", 1)[0]
    assert "PHQ-9 response" in tiles and "35%" not in tiles
    for html_page in (page, network_page):
        for figure in re.findall(
            r'Plotly\.newPlot\(\s*"figure-clinic-vs-network",\s*(\[.*?\]),\s*\{', html_page, flags=re.S
        ):
            clinics_trace = [t for t in json.loads(figure) if t.get("name") == "clinics"]
            assert all(SMALL_CLINIC not in t["text"] for t in clinics_trace)
    assert "Counts from 1 to 10 are not shown" in page
