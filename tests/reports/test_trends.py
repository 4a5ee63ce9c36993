"""A trend draws response and remission at one grain where both can be shown (spec §10.8, §10.2).

Each inbox holds one clinic whose PHQ-9 inductions start evenly over the 24
months from 2024-07 to 2026-06: 30 a month, all remission-eligible (baseline
20), 15 of them responders. Remission is rarer: 3 remitters a month in one
clinic, 1 in the other. Counts of 1 to 10 are hidden, so:

- 3 a month: months hold 3 remitters and quarters 9 (hidden); half-years 18 of
  180 (10.0%), shown, at four points: both lines at half-years.
- 1 a month: half-years 6 (hidden); years 12 of 360, but two points; months
  grouped to hold 11 remitters give two. Response keeps its 24 months and
  remission is left out, saying so, rather than drawn as a stray point or two.

A third clinic starts 18 months (from 2025-01) of 3 remitters and also 10
series a month from a baseline of 3, evaluable but not remission-eligible
(PHQ-9 remission is a score of 4 or less). Three half-years are too few points,
so months are grouped to hold 11 remitters: four months, 12 of 120 eligible
(10.0%, not 12 of 160 evaluable), the last period taking the two months left.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.figures import Cohort, trends
from pipelines.reports.publishable import TREND_COUNTS, balanced_periods, publishable
from tests.conftest import Refresh, write_inbox

MONTHS = [date(2024 + (6 + m) // 12, (6 + m) % 12 + 1, 3) for m in range(24)]  # 2024-07-03 .. 2026-06-03
ELIGIBLE_A_MONTH, RESPONDERS_A_MONTH = 30, 15
# remitters a month, months, ineligible series a month
CLINICS = {
    "3-remitters-a-month": (3, MONTHS, 0),
    "1-remitter-a-month": (1, MONTHS, 0),
    "ineligible": (3, MONTHS[6:], 10),
}


def clinic_inbox(folder, remitters_a_month: int, months: list[date], ineligible_a_month: int):
    patients, infusions, assessments = [], [], []
    for month, start in enumerate(months):
        for n in range(ELIGIBLE_A_MONTH + ineligible_a_month):
            patient = f"P{month:02d}{n:02d}"
            patients.append(f"{patient},north,1980,F,depression")
            infusions += [f"{patient},{start + timedelta(days=2 * i)},0.5,40" for i in range(6)]
            # remits, responds, neither; or from 3 to 3, neither and not eligible for remission
            baseline, end = (
                (20, 4 if n < remitters_a_month else 8 if n < RESPONDERS_A_MONTH else 16)
                if n < ELIGIBLE_A_MONTH
                else (3, 3)
            )
            assessments.append(f"{patient},phq9,{start},{baseline}")
            assessments.append(f"{patient},phq9,{start + timedelta(days=14)},{end}")
    return write_inbox(
        folder,
        "patient_id,clinic_id,birth_year,sex,primary_indication\n" + "\n".join(patients) + "\n",
        "patient_id,infused_at,dose_mg_per_kg,duration_min\n" + "\n".join(infusions) + "\n",
        "patient_id,instrument,administered_at,score\n" + "\n".join(assessments) + "\n",
    )


@pytest.fixture(scope="module", params=list(CLINICS))
def clinic(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("trends")
    refresh = Refresh(root / "out")
    refresh.ok(clinic_inbox(root / "inbox", *CLINICS[request.param]), as_of="2026-06-30T00:00:00")
    with duckdb.connect(str(refresh.warehouse), read_only=True) as con:
        data = publishable(con, OutcomeRules(), "2026-06-30")
    return request.param, data


def phq9_trend(data, cohort: str) -> pl.DataFrame:
    return data.trends.filter(
        (pl.col("cohort") == cohort) & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    ).sort("label")


@pytest.mark.parametrize("cohort", ["all", "north"])
def test_a_trend_draws_both_rates_at_the_finest_grain_that_shows_both(clinic, cohort):
    name, data = clinic
    trend = phq9_trend(data, cohort)
    if name == "3-remitters-a-month":
        assert trend.select("period", "label", "evaluable_count", "responder_count", "remitter_count").rows() == [
            ("start_half", half, 180, 90, 18) for half in ("2024-H2", "2025-H1", "2025-H2", "2026-H1")
        ]
        assert trend["response_rate"].to_list() == [0.5] * 4
        assert trend["remission_rate"].to_list() == [0.1] * 4
    elif name == "ineligible":
        assert trend.select("period", "label", "evaluable_count", "responder_count").rows() == [
            ("balanced", "2025-01 to 2025-04", 160, 60),
            ("balanced", "2025-05 to 2025-08", 160, 60),
            ("balanced", "2025-09 to 2025-12", 160, 60),
            ("balanced", "2026-01 to 2026-06", 240, 90),
        ]
        assert trend["response_rate"].to_list() == [0.375] * 4
        assert trend.select("remission_eligible_count", "remitter_count", "remission_rate").rows() == [
            *[(120, 12, 0.1)] * 3,
            (180, 18, 0.1),
        ]
    else:
        assert trend["period"].unique().to_list() == ["start_month"]
        assert trend["label"].to_list() == [m.strftime("%Y-%m") for m in MONTHS]
        assert trend["response_rate"].to_list() == [0.5] * 24
        assert trend["remission_rate"].null_count() == 24 and trend["remitter_count"].null_count() == 24


def test_the_legend_says_why_a_trend_has_no_remission_line(clinic):
    name, data = clinic
    names = [trace["name"] for trace in trends(data, Cohort("north")).data]
    if name == "3-remitters-a-month":
        assert names == ["response rate (half-year)", "remission rate (half-year)"]
    elif name == "ineligible":
        assert names == ["response rate (runs of months)", "remission rate (runs of months)"]
    else:
        assert names == ["response rate (month)", "remission rate: too few per period to show"]


def test_a_period_without_remission_eligible_series_has_no_remission_rate():
    """Every baseline at or below the cut-off: nothing could remit, so remission is no rate (not 0%, not NaN)."""
    months = pl.DataFrame(
        {
            "cohort": "north",
            "instrument": "phq9",
            "series_kind": "induction",
            "dimension": "clinic_start_month",
            "parent": "north",
            "dimension_value": [f"north / 2026-0{m}" for m in range(1, 7)],
            "label": [f"2026-0{m}" for m in range(1, 7)],
            "evaluable_count": 30,
            "responder_count": 15,
            "remission_eligible_count": 0,
            "remitter_count": 0,
        }
    )
    periods = balanced_periods(months, 11, [TREND_COUNTS["response_rate"]])
    # Each month holds 15 responders and 15 others, and 30 of the 22 series a period needs: a period each.
    assert periods.select("label", "response_rate", "remission_rate").rows() == [
        (f"2026-0{m}", 0.5, None) for m in range(1, 7)
    ]


def test_an_instrument_whose_trend_shows_no_point_is_left_out_of_the_menu(clinic):
    _, data = clinic
    phq9 = phq9_trend(data, "north")
    first = phq9["label"][0]
    one_point = phq9.with_columns(
        instrument=pl.lit("gad7"), response_rate=pl.when(pl.col("label") == first).then(pl.col("response_rate"))
    )
    none = phq9.with_columns(instrument=pl.lit("madrs"), response_rate=pl.lit(None, pl.Float64))
    figure = trends(dataclasses.replace(data, trends=pl.concat([phq9, one_point, none])), Cohort("north"))
    # PHQ-9's and GAD-7's lines; MADRS, with nothing to draw, is not offered as an empty chart.
    assert [button["label"] for button in figure.layout["updatemenus"][0]["buttons"]] == ["PHQ-9", "GAD-7"]
    assert len(figure.data) == 4
