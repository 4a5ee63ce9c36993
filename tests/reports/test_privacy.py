"""Spec §10.8: no count from 1 to 10 can be shown or worked out from what the directors' pages publish.

The inbox holds three demo clinics, a clinic of 20 patients of whom exactly 7
respond on PHQ-9, a clinic of 12 and a clinic of 4 patients. The tests attack
the publishable layer (the only data a page reads) and the pages themselves
the way an outsider would: small counts shown, totals minus the shown parts
(one hidden cell or the union of several), differences of shown counts
(funnel steps), Kaplan-Meier steps, and rates printed precisely enough to give
k out of n.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.demo.generator import write_inbox
from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.dashboard import breakdown_table, clinic_folder
from pipelines.reports.disclosure import safe_steps, safe_survival_points, suppress_cells
from pipelines.reports.figures import Cohort
from pipelines.reports.publishable import BALANCED, publishable
from pipelines.stats.dimensions import CLINIC, CLINIC_SPLITS, DOSE_BAND, NETWORK, PROVIDER
from tests.conftest import Refresh

K = OutcomeRules().min_cell_size
SMALL_CLINIC = "smallville"
TWELVE_CLINIC = "twelve oaks"
FOUR_CLINIC = "fourways"
HOSTILE_CLINIC = "<a href='https://evil.example'>click</a>"
COUNT_COLUMNS = re.compile(r".*_count$|inductions_reaching")


def append_clinic(inbox: Path, clinic: str, prefix: str, patients: int, responders: int) -> None:
    """Add a clinic whose depression patients complete an induction; exactly `responders` respond on PHQ-9."""
    start = date(2026, 3, 2)
    with open(inbox / "patients.csv", "a") as file:
        for n in range(patients):
            file.write(f'{prefix}{n:03d},"{clinic}",1970,F,depression,self\n')
    with open(inbox / "infusions.csv", "a") as file:
        for n in range(patients):
            for k in range(6):
                file.write(f"{prefix}{n:03d},{(start + timedelta(days=2 * k)).isoformat()},0.5,40,,,,,,,,,\n")
    with open(inbox / "assessments.csv", "a") as file:
        for n in range(patients):
            end_score = 8 if n < responders else 16  # from 20: -60% responds, -20% does not
            file.write(f"{prefix}{n:03d},phq9,{start.isoformat()},20,,,,,,,,,\n")
            file.write(f"{prefix}{n:03d},phq9,{(start + timedelta(days=14)).isoformat()},{end_score},,,,,,,,,\n")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    write_inbox(root / "inbox", patients=1500, clinics=3, seed=11, end_date=date(2026, 6, 30), years=2.0)
    append_clinic(root / "inbox", SMALL_CLINIC, "SV", patients=20, responders=7)
    append_clinic(root / "inbox", TWELVE_CLINIC, "TW", patients=12, responders=6)
    append_clinic(root / "inbox", FOUR_CLINIC, "FW", patients=4, responders=2)
    append_clinic(root / "inbox", HOSTILE_CLINIC, "HX", patients=15, responders=8)
    refresh = Refresh(root / "out")
    refresh.ok(root / "inbox", as_of="2026-06-30T00:00:00")
    return refresh


@pytest.fixture(scope="module")
def data(published):
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        return publishable(con, OutcomeRules(), "2026-06-30")


@pytest.fixture(scope="module")
def marts(published):
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        return {
            name: con.sql(f"select * from marts.{name}").pl()
            for name in ("response_rates", "relief_survival", "completion_funnel")
        }


def frames(data) -> dict[str, pl.DataFrame]:
    return {name: value for name, value in vars(data).items() if isinstance(value, pl.DataFrame)}


def test_the_small_clinic_really_has_seven_responders_in_the_warehouse(published):
    [row] = published.rows(
        "select evaluable_count, responder_count from marts.response_rates "
        "where dimension = 'clinic' and dimension_value = ? and instrument = 'phq9' "
        "and series_kind = 'induction'",
        SMALL_CLINIC,
    )
    assert row == {"evaluable_count": 20, "responder_count": 7}


def test_no_published_aggregate_holds_a_count_from_one_to_ten(data):
    for name, frame in frames(data).items():
        for column in frame.columns:
            if COUNT_COLUMNS.fullmatch(column) or column == "patient_count":
                small = frame.filter(pl.col(column).is_between(1, K - 1))
                assert small.is_empty(), (name, column, small.head(3).to_dicts())


def complements(rows: pl.DataFrame, total: str, count: str) -> pl.Series:
    return rows[total] - rows[count]


def test_no_hidden_count_is_a_published_total_minus_the_cells_shown(data):
    """Attack: a table's total (the network, a clinic) minus its shown cells gives a hidden cell, or the union
    of several hidden cells; so does the complement (non-responders)."""
    rates = data.response_rates.vstack(data.trends.select(data.response_rates.columns))
    totals = {
        (row["dimension"], row["dimension_value"], row["instrument"], row["series_kind"]): row
        for row in rates.iter_rows(named=True)
    }
    checked = 0
    for (dimension, parent, instrument, kind), cells in rates.filter(pl.col("dimension") != NETWORK).group_by(
        ["dimension", "parent", "instrument", "series_kind"]
    ):
        parent_dimension = CLINIC if dimension in CLINIC_SPLITS.values() else NETWORK
        total = totals.get((parent_dimension, parent, instrument, kind))
        if total is None or total["evaluable_count"] is None:
            continue
        for count in ("evaluable_count", "responder_count", "remitter_count"):
            if total[count] is None:
                continue
            shown = cells.filter(pl.col(count).is_not_null())
            hidden_sum = total[count] - shown[count].sum()
            assert not 1 <= hidden_sum < K, (dimension, parent, instrument, kind, count, hidden_sum)
            if count != "evaluable_count":
                shown_both = cells.filter(pl.col(count).is_not_null() & pl.col("evaluable_count").is_not_null())
                hidden_complement = (total["evaluable_count"] - total[count]) - complements(
                    shown_both, "evaluable_count", count
                ).sum()
                # Only meaningful when every cell's total is shown: then hidden complements add up too.
                if cells["evaluable_count"].null_count() == 0:
                    assert not 1 <= hidden_complement < K, (dimension, parent, instrument, kind, count)
            checked += 1
    assert checked > 50


def test_no_period_cell_of_a_clinic_is_the_networks_minus_the_other_clinics(data):
    """Attack across pages: the network's trend point of a period minus the other clinics' points of it."""
    rates = data.trends
    for period in rates["period"].unique().to_list():
        if period == BALANCED:  # runs of months chosen per clinic: no two clinics' periods line up
            continue
        network = rates.filter(pl.col("dimension") == period)
        clinics = rates.filter(pl.col("dimension") == CLINIC_SPLITS[period])
        for row in network.iter_rows(named=True):
            if row["responder_count"] is None:
                continue
            same = clinics.filter(
                (pl.col("label") == row["label"])
                & (pl.col("instrument") == row["instrument"])
                & (pl.col("series_kind") == row["series_kind"])
            )
            for count in ("evaluable_count", "responder_count"):
                rest = row[count] - same[count].drop_nulls().sum()
                assert not 1 <= rest < K, (period, row["label"], row["instrument"], count, rest)


def test_no_difference_of_two_shown_funnel_steps_is_small(data):
    for _, steps in data.completion_funnel.sort("infusion_number").group_by(
        ["dimension", "dimension_value"], maintain_order=True
    ):
        counts = steps["inductions_reaching"].to_list()
        for before, after in itertools.pairwise(counts):
            assert not 1 <= before - after < K, (steps["dimension_value"][0], counts)


def test_every_published_survival_point_has_enough_at_risk_and_no_small_step_of_relapses(data, marts):
    key = ["dimension", "dimension_value", "instrument", "series_kind", "day"]
    full = marts["relief_survival"].select(*key, "at_risk", "events")
    published = data.relief_survival.join(full, on=key, how="left")
    assert published["at_risk"].null_count() == 0 and published.height > 0
    assert published["at_risk"].min() >= K
    for _, curve in data.relief_survival.group_by(key[:-1]):
        days = [-1, *curve.sort("day")["day"].to_list()]  # relapses on day 0 count too
        whole = marts["relief_survival"].join(curve.select(key[:-1]).unique(), on=key[:-1])
        for start, end in itertools.pairwise(days):
            relapses = whole.filter((pl.col("day") > start) & (pl.col("day") <= end))["events"].sum()
            assert not 1 <= relapses < K, (curve.row(0), start, end, relapses)


def test_rates_and_bounds_are_printed_to_a_tenth_of_a_percentage_point_at_most(data, published):
    for name, frame in frames(data).items():
        for column in frame.columns:
            if column.endswith(("_rate", "_ci_low", "_ci_high", "survival", "share_reaching")):
                values = frame[column].drop_nulls()
                assert ((values * 1000).round(6) == (values * 1000).round(0)).all(), (name, column)
    # The funnel plot's network line used to print 0.3584905660377358 (= 228/636): no rate of any figure is
    # printed to more than three decimals.
    for path in published.reports.rglob("clinic-*.html"):
        for figure in re.findall(
            r'Plotly\.newPlot\(\s*"figure-clinic-vs-network",\s*(\[.*?\]),\s*\{', path.read_text(), flags=re.S
        ):
            for trace in json.loads(figure):
                for value in trace["y"]:
                    assert value is None or round(value, 3) == value, (path.name, trace["name"], value)


def test_the_small_clinics_response_rate_is_neither_shown_nor_recoverable(data):
    rates = data.response_rates
    clinics = rates.filter(
        (pl.col("dimension") == "clinic") & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    )
    small = clinics.filter(pl.col("dimension_value") == SMALL_CLINIC).row(0, named=True)
    assert small["responder_count"] is None and small["response_rate"] is None and small["response_ci_low"] is None
    network = rates.filter(
        (pl.col("dimension") == "network") & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    ).row(0, named=True)
    assert network["responder_count"] - clinics["responder_count"].drop_nulls().sum() not in range(1, K)


def test_a_clinic_with_fewer_patients_than_the_minimum_gets_no_page_but_counts_in_the_network(published, data):
    assert FOUR_CLINIC not in data.clinics and TWELVE_CLINIC in data.clinics
    pages = {path.name for path in published.reports.rglob("*.html")}
    assert Cohort(FOUR_CLINIC).file_name not in pages and Cohort(TWELVE_CLINIC).file_name in pages
    assert FOUR_CLINIC not in "".join(path.read_text() for path in published.reports.rglob("*.html"))
    network = data.patients.filter(pl.col("dimension") == NETWORK)["patient_count"][0]
    assert network == 1500 + 20 + 12 + 4 + 15


def test_no_page_shows_the_small_clinics_seven_of_twenty(published):
    page = (published.reports / clinic_folder(SMALL_CLINIC) / Cohort(SMALL_CLINIC).file_name).read_text()
    tiles = page.split('<section class="tiles">', 1)[1].split("</section>", 1)[0]
    assert "PHQ-9 response" in tiles and "35.0%" not in tiles and "35%" not in tiles
    # Said to be withheld: a dash would read as "no series" or "none".
    assert re.search(r"<div class='value'>withheld</div><div class='label'>PHQ-9 response after induction", tiles)
    for path in published.reports.rglob("*.html"):
        for figure in re.findall(
            r'Plotly\.newPlot\(\s*"figure-clinic-vs-network",\s*(\[.*?\]),\s*\{', path.read_text(), flags=re.S
        ):
            clinic_traces = [trace for trace in json.loads(figure) if "markers" in trace["mode"]]
            assert clinic_traces, path.name
            for trace in clinic_traces:
                assert SMALL_CLINIC not in trace["text"] and SMALL_CLINIC not in trace["name"]
                assert 0.35 not in trace["y"]
    assert "no count from 1 to 10 is shown or can be worked out" in page


def test_a_clinic_id_made_of_markup_shows_as_text_on_every_page(published):
    for path in published.reports.rglob("*.html"):
        text = path.read_text()
        assert "<a href='https://evil.example'>" not in text, path.name
        assert "href=\\u0027https://evil.example" not in text and 'href=\\"https://evil.example' not in text
    index = (published.reports / "index.html").read_text()
    assert "&lt;a href=&#x27;https://evil.example&#x27;&gt;click&lt;/a&gt;" in index


def test_the_operators_summary_linked_from_the_index_hides_small_counts(published):
    page = (published.reports / "operator" / "refresh_summary.html").read_text()
    numbers = [int(n.replace(",", "")) for n in re.findall(r"<td>([\d,]+)</td>", page)]
    assert numbers and not [n for n in numbers if 1 <= n < K]
    summary = json.loads((published.reports / "operator" / "refresh_summary.json").read_text())
    for row in summary["rejected_by_reason"] + summary["outcomes_by_status"]:
        count = row.get("row_count", row.get("outcome_count"))
        assert count is None or not 1 <= count < K


def test_secondary_suppression_hides_the_smallest_other_cell_and_unions_stay_safe():
    # A hand-made table: total 40 of which clinics a 3 (hidden), b 25, c 12. Hiding only a leaves 40-25-12 = 3.
    cells = pl.DataFrame(
        {
            "dimension": ["clinic"] * 3,
            "parent": ["all"] * 3,
            "dimension_value": ["a", "b", "c"],
            "n": [3, 25, 12],
        }
    )
    shown = suppress_cells(cells, [["dimension", "parent"]], "n", {}, 11)
    assert shown["n"].to_list() == [None, 25, None]  # 3 + 12 = 15 hidden together: not small
    # Two small cells whose union is small too (2 + 4 = 6): a third cell goes.
    cells = cells.with_columns(n=pl.Series([2, 30, 4]))
    assert suppress_cells(cells.vstack(cells.head(0)), [["dimension", "parent"]], "n", {}, 11)["n"].to_list() == [
        None,
        None,
        None,
    ]


def test_funnel_steps_and_survival_points_are_thinned_by_hand_counted_rules():
    funnel = pl.DataFrame({"c": ["x"] * 5, "step": [1, 2, 3, 4, 5], "reaching": [100, 97, 80, 75, 60]})
    kept = safe_steps(funnel, ["c"], "step", "reaching", 11)
    assert kept["reaching"].to_list() == [100, 80, 60]  # 100-97 = 3 and 80-75 = 5 would be shown differences
    curve = pl.DataFrame(
        {
            "c": ["x"] * 5,
            "day": [10, 20, 30, 40, 50],
            "at_risk": [100, 95, 70, 40, 9],
            "events": [5, 8, 12, 3, 2],
            "survival": [0.95, 0.87, 0.72, 0.67, 0.5],
            "ci_low": [0.9] * 5,
            "ci_high": [0.99] * 5,
        }
    )
    assert safe_survival_points(curve, ["c"], 11)["day"].to_list() == [20, 30]  # 5+8 = 13; then 12; then 3 < 11


def test_two_clinic_ids_that_differ_only_in_case_punctuation_or_script_get_two_pages():
    names = ["Frisco North", "frisco_north", "frisco-north", "Клиника", "診療所"]
    files = {Cohort(name).file_name for name in names}
    assert len(files) == len(names)
    assert all(re.fullmatch(r"clinic-[a-z0-9-]+-[0-9a-f]{8}\.html", file) for file in files)


def test_min_cell_size_below_two_is_refused_unless_disclosure_control_is_switched_off_by_name(tmp_path):
    import subprocess
    import sys

    from tests.conftest import GOLDEN

    command = [
        sys.executable, "-m", "pipelines.cli", "refresh", "--inbox", str(GOLDEN / "basic" / "inbox"),
        "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path / "reports"),
        "--as-of", "2026-11-01T00:00:00", "--min-cell-size", "1",
    ]  # fmt: skip
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        (
            "Error: invalid setting: min_cell_size 1 would publish counts of single patients: use 2 or more, or switch "
            "disclosure control off by name (--no-disclosure-control), which marks every page not for publication"
        )
    ]
    assert not (tmp_path / "reports").exists()
    allowed = subprocess.run([*command, "--no-disclosure-control"], capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr
    for path in (tmp_path / "reports").rglob("*.html"):
        assert "NOT FOR PUBLICATION" in path.read_text(), path.name


def test_a_trajectory_that_ends_in_small_points_pools_them_into_one_point_of_enough_scores():
    from scipy import stats

    from pipelines.reports.publishable import publishable_trajectories

    # One clinic's curve: 40 scores after 1 infusion, then 6 and 7 after 2 and 3 (too few each, 13 together).
    # Means -20 (sd 10), -30 (sd 12), -40 (sd 8): the pooled point has 13 scores and mean (6x-30 + 7x-40)/13.

    def point(infusions: int, n: int, mean: float, sd: float) -> dict:
        half = stats.t.ppf(0.975, n - 1) * sd / n**0.5 if n > 1 else 0.0
        return {
            "dimension": "network",
            "dimension_value": "all",
            "instrument": "phq9",
            "infusions_received": infusions,
            "score_count": n,
            "mean_pct_change": mean,
            "ci_low": mean - half,
            "ci_high": mean + half,
        }

    rows = pl.DataFrame([point(0, 40, 0.0, 0.0), point(1, 40, -20, 10), point(2, 6, -30, 12), point(3, 7, -40, 8)])
    published = publishable_trajectories(rows, 11).sort("infusions_received")
    shown = published.filter(pl.col("mean_pct_change").is_not_null())
    assert shown["infusions_label"].to_list() == ["0", "1", "2+"]
    pooled = shown.row(2, named=True)
    assert pooled["score_count"] == 13
    assert pooled["mean_pct_change"] == pytest.approx((6 * -30 + 7 * -40) / 13)
    # The pooled scores' sd from the two groups' (the parallel-variance formula), checked against numbers drawn
    # to those means and sds: the interval is the t interval of the 13 scores.
    mean = (6 * -30 + 7 * -40) / 13
    squares = 5 * 12**2 + 6 * 8**2 + 6 * (-30 - mean) ** 2 + 7 * (-40 - mean) ** 2
    sd = (squares / 12) ** 0.5
    half = stats.t.ppf(0.975, 12) * sd / 13**0.5
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((mean - half, mean + half))
    # The points it pools stay hidden.
    assert published.filter(pl.col("infusions_label").is_in(["2", "3"]))["score_count"].to_list() == [None, None]


def test_a_count_hidden_to_protect_a_small_one_is_shown_as_withheld_not_as_small(data, marts):
    # A cell hidden only so that a total does not give a small one away may hold any number: "fewer than 11"
    # would be untrue of it.
    true_counts = marts["response_rates"].select(
        "dimension", "dimension_value", "instrument", "series_kind", pl.col("evaluable_count").alias("true_count")
    )
    hidden_but_large = (
        data.response_rates.filter(
            pl.col("dimension").is_in([CLINIC_SPLITS[DOSE_BAND], CLINIC_SPLITS[PROVIDER]])
            & (pl.col("series_kind") == "induction")
            & pl.col("evaluable_count").is_null()
        )
        .join(true_counts, on=["dimension", "dimension_value", "instrument", "series_kind"])
        .filter((pl.col("true_count") >= K) & pl.col("dimension_value").str.starts_with("austin / "))
    )
    assert hidden_but_large.height, "the fixture has a secondarily suppressed breakdown cell"
    row = hidden_but_large.row(0, named=True)
    by = DOSE_BAND if row["dimension"] == CLINIC_SPLITS[DOSE_BAND] else PROVIDER
    table = breakdown_table(data, Cohort("austin"), by, row["instrument"])
    label = html.escape(row["dimension_value"].split(" / ")[-1])
    cell = table.split(f"<td>{label}</td>", 1)[1].split("</td>", 1)[0]
    assert cell == "<td>withheld", cell
    assert "fewer than" not in table
