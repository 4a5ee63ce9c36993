"""What a small clinic's page draws: one curve per indication when it treats one, and a median relief whose
interval says which of its bounds were reached.

Clinic "North" treats depression only (its 40 patients all score PHQ-9), in a
network of several indications (the module of tests/reports/test_clinic_ids_with_separator).
"""

from __future__ import annotations

import dataclasses
from html import escape

import duckdb
import polars as pl
import pytest

from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.dashboard import breakdown_table, league_table, median_interval, rate_cell, tiles
from pipelines.reports.disclosure import note
from pipelines.reports.figures import Cohort, booster_intervals, relief_curves, trajectory
from pipelines.reports.publishable import publishable
from pipelines.stats.dimensions import DOSE_BAND
from tests.reports.test_clinic_ids_with_separator import NORTH, data  # noqa: F401 - the module's fixture

MOOD = ("phq9", "gad7")


def curve_names(figure) -> list[str]:
    """The figure's curves, in drawing order (not their 95% bands)."""
    return [trace["name"] for trace in figure.data if not trace["name"].endswith("95% band")]


@pytest.mark.parametrize("draw", [relief_curves, trajectory])
def test_a_clinic_with_one_indication_draws_its_curve_once_under_the_indications_name(data, draw):  # noqa: F811
    figure = draw(data, Cohort(NORTH), MOOD, "mood")
    assert figure is not None
    # Before: "All indications" and "Depression", the same points twice, one line hiding the other.
    assert curve_names(figure) == ["Depression"]


def test_a_network_of_several_indications_draws_all_of_them_and_each_one(data):  # noqa: F811
    names = curve_names(trajectory(data, Cohort(), ("phq9",), "mood"))
    assert names[0] == "All indications"
    assert {"Depression", "Anxiety"} <= set(names[1:])


@pytest.mark.parametrize(
    ("low", "high", "shown"),
    [
        (30, 60, "95% CI 30–60 days"),
        (30, None, "95% CI 30 days or longer"),
        (None, None, "95% CI not reached"),
    ],
)
def test_the_median_relief_interval_says_which_bounds_were_reached(low, high, shown):
    assert median_interval(low, high) == shown


NORTH_PHQ9 = (
    (pl.col("dimension") == "clinic")
    & (pl.col("dimension_value") == NORTH)
    & (pl.col("instrument") == "phq9")
    & (pl.col("series_kind") == "induction")
)


def with_north(frame: pl.DataFrame, **values) -> pl.DataFrame:
    """Return frame with North's PHQ-9 induction row's columns set to values."""
    return frame.with_columns(
        pl.when(NORTH_PHQ9).then(pl.lit(value, frame.schema[column])).otherwise(pl.col(column)).alias(column)
        for column, value in values.items()
    )


def relief_tile(data, **summary) -> str:  # noqa: F811
    """North's tiles with its PHQ-9 induction relief summary set to summary's values."""
    html = tiles(dataclasses.replace(data, relief_summary=with_north(data.relief_summary, **summary)), Cohort(NORTH))
    label = html.index("median relief, PHQ-9")
    return html[html.rindex("<div class='tile'>", 0, label) : html.index("</div></div>", label)]


def test_a_median_not_reached_shows_its_lower_bound_and_no_stray_dash(data):  # noqa: F811
    tile = relief_tile(data, relapse_count=12, median_relief_days=None, median_ci_low=41, median_ci_high=None)
    assert ">not reached<" in tile
    assert "median relief, PHQ-9 (95% CI 41 days or longer)" in tile
    assert "—" not in tile


def test_a_withheld_median_shows_no_interval(data):  # noqa: F811
    tile = relief_tile(data, relapse_count=None, median_relief_days=None, median_ci_low=None, median_ci_high=None)
    assert ">withheld<" in tile
    assert "CI" not in tile


def test_a_clinic_too_small_for_its_booster_bar_is_named_beside_the_networks(data):  # noqa: F811
    figure = booster_intervals(data, Cohort(NORTH))
    assert figure is not None
    bars = figure.data[0]
    # North's 40 patients had too few boosters to show; the network's bar alone would read as North's.
    assert bars["x"] == ["North: too few to show", "network"]
    assert bars["y"][0] is None and bars["y"][1] > 0


def test_a_clinic_with_its_own_booster_bar_has_no_empty_place(data):  # noqa: F811
    clinic = next(c for c in data.clinics if c != NORTH and not c.startswith(NORTH))
    labels = booster_intervals(data, Cohort(clinic)).data[0]["x"]
    assert len(labels) == 2 and not any("too few" in label for label in labels)


def test_each_line_draws_its_own_rows_in_order_of_day_or_infusion(data):  # noqa: F811
    relief = relief_curves(data, Cohort(), ("phq9",), "mood")
    for trace in relief.data:
        assert trace["x"][0] == 0 and trace["x"] == sorted(set(trace["x"])), trace["name"]
    network = data.relief_survival.filter(
        (pl.col("dimension") == "network") & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    ).sort("day")
    (whole,) = [trace for trace in relief.data if trace["name"] == "All indications"]
    assert whole["x"] == [0, *network["day"].to_list()]
    assert whole["y"] == [1.0, *network["survival"].to_list()]
    for trace in trajectory(data, Cohort(NORTH), MOOD, "mood").data:
        assert trace["x"] == sorted(set(trace["x"])), trace["name"]


def test_relief_curves_are_drawn_for_the_whole_cohort_and_each_indication(demo_warehouse):
    """The curves pages draw are the only ones Publishable keeps (not the mart's by period, provider or dose)."""
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        demo = publishable(con, OutcomeRules(), "2026-06-30")
    drawn = {
        clinic: curve_names(relief_curves(demo, Cohort(clinic), ("phq9",), "mood")) for clinic in [None, *demo.clinics]
    }
    assert drawn[None][0] == "All indications" and "Depression" in drawn[None][1:], drawn
    # A clinic's depression curve is hidden where its relapses are too few to show (Denver's): not every clinic's.
    assert any("Depression" in drawn[clinic] for clinic in demo.clinics), drawn
    assert set(demo.relief_survival["dimension"]) == {"network", "clinic", "indication", "clinic_indication"}


@pytest.mark.parametrize(("eligible", "shown"), [(0, "—"), (None, "withheld"), (25, "withheld")])
def test_a_missing_remission_tile_says_whether_no_series_counted_or_it_is_withheld(data, eligible, shown):  # noqa: F811
    hidden = dict.fromkeys(("remission_rate", "remission_ci_low", "remission_ci_high"))
    rates = with_north(data.response_rates, remission_eligible_count=eligible, **hidden)
    html = tiles(dataclasses.replace(data, response_rates=rates), Cohort(NORTH))
    assert f"<div class='value'>{shown}</div><div class='label'>PHQ-9 remission after induction<" in html


def league_row(data, clinic: str) -> str:  # noqa: F811
    table = league_table(data)
    start = table.index(f">{data.name_of(clinic)}<")
    return table[start : table.index("</tr>", start)]


def test_the_league_says_not_reached_and_withheld_as_the_tiles_do(data):  # noqa: F811
    relief = with_north(data.relief_summary, relapse_count=12, median_relief_days=None)
    rates = with_north(
        data.response_rates, **dict.fromkeys(("remission_rate", "remission_ci_low", "remission_ci_high"))
    )
    row = league_row(dataclasses.replace(data, relief_summary=relief, response_rates=rates), NORTH)
    assert ">not reached</td>" in row and ">withheld</td>" in row and "—" not in row


@pytest.mark.parametrize(
    ("count", "shown"), [(0, "<td>—</td>"), (None, "<td>withheld</td>"), (25, "<td>withheld</td>")]
)
def test_a_missing_rate_in_a_table_says_whether_no_series_counted_or_it_is_withheld(count, shown):
    assert rate_cell({"response_rate": None, "evaluable_count": count}, "response", "evaluable_count") == shown


def test_the_dose_band_table_says_withheld_for_a_hidden_median_and_a_dash_where_no_one_responded(data):  # noqa: F811
    network_bands = (
        (pl.col("dimension") == DOSE_BAND) & (pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction")
    )
    assert data.relief_summary.filter(network_bands).height >= 2
    hidden, kept = data.relief_summary.filter(network_bands)["dimension_value"].sort()[:2]
    relief = data.relief_summary.with_columns(
        pl.when(network_bands & (pl.col("dimension_value") == hidden))
        .then(None)
        .otherwise(pl.col("relapse_count"))
        .alias("relapse_count")
    ).filter(~(network_bands & (pl.col("dimension_value") == kept)))
    table = breakdown_table(dataclasses.replace(data, relief_summary=relief), Cohort(), DOSE_BAND, "phq9")

    def median_of(band: str) -> str:
        row = table[table.index(f"<td>{escape(band)}</td>") :]
        return row[: row.index("</tr>")].rsplit("<td>", 1)[1].removesuffix("</td>")

    assert median_of(hidden) == "withheld"
    assert median_of(kept) == "—"  # no relief row: no responder to follow


def test_every_pages_note_says_what_withheld_and_a_dash_mean_and_names_runs_of_months():
    text = note(11)
    assert 'A hidden figure reads "withheld"; a dash means there was nothing to count.' in text
    assert "runs of months" in text
