"""The statistics' cells brought up to date from the rows a merge replaced, and counted anew when they cannot be."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.statistics import (
    CELLS_SCHEMA,
    CELLS_SOURCE_TABLE,
    RELIEF_SURVIVAL,
    SERIES_OUTCOMES,
    cells_brought_up_to_date,
    cells_counted_anew,
    kept_relief_counts,
    relief_survival_of,
    write_counted_from,
)
from pipelines.database import replace_table
from pipelines.incremental.scope import SCOPE_TABLE, attach_recomputed_rows, merge_by_patient
from pipelines.stats.cohorts import RATE_KEY, cohorts_of_cells, relief_cells, relief_survival_from_cells
from pipelines.stats.dimensions import CLINIC_SPLITS, INDICATION, START_MONTH


def series(patient_id: str, **values) -> dict:
    row = {
        "patient_id": patient_id,
        "clinic_id": "austin",
        "primary_indication": "depression",
        "series_start_at": datetime(2026, 3, 2, 9),
        "provider_id": None,
        "dose_band": "0.5-0.75",
        "instrument": "phq9",
        "series_kind": "induction",
        "status": "evaluable",
        "baseline_score": 20,
        "is_responder": True,
        "is_remission_eligible": True,
        "is_remitter": False,
        "is_rapid_response": False,
        "is_completed_induction": True,
        "is_reliable_improvement": True,
        "is_reliable_deterioration": False,
        "is_reliable_recovery": True,
        "is_early_non_improver": None,
        "relief_days": 30,
        "relief_status": "censored",
        "end_pct_change": -60.0,
    }
    return row | values


@pytest.fixture
def con():
    """A warehouse of three patients' series outcomes whose cells were counted, as a full refresh leaves it."""
    con = duckdb.connect()
    con.execute("attach ':memory:' as raw")
    attach_recomputed_rows(con)  # as the run's connection has it
    for schema in ("seeds", "marts", CELLS_SCHEMA):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        "create table seeds.instruments as select 'phq9' as instrument, 10 as caseness_min, 0 as score_min, "
        "27 as score_max"
    )
    rows = pl.DataFrame(
        [
            series("P1"),
            series("P2", clinic_id="frisco", is_responder=False, relief_days=None, relief_status=None),
            series("P3", end_pct_change=-20.0, is_responder=False, relief_days=None, relief_status=None),
        ]
    )
    replace_table(con, SERIES_OUTCOMES, rows)
    count_anew(con)
    con.execute(f"create table {SCOPE_TABLE} as select 'P1' as patient_key")
    return con


def count_anew(con) -> dict[str, pl.DataFrame]:
    """Count every cell from every series and keep them with the relief curves, as a full refresh does; return
    them."""
    cells, counted = cells_counted_anew(con)
    replace_table(con, RELIEF_SURVIVAL, relief_survival_from_cells(cells["relief_cells"].lazy()).collect())
    for name, frame in cells.items():
        replace_table(con, f"{CELLS_SCHEMA}.{name}", frame)
    write_counted_from(con, *counted, "counted")
    return cells


def merge_p1(con, **values) -> None:
    """Recompute patient P1's series outcomes as an incremental refresh merges them."""
    con.register("p1_rows", pl.DataFrame([series("P1", **values)]))
    merge_by_patient(con, SERIES_OUTCOMES, "select * from p1_rows")
    con.unregister("p1_rows")


def same_cells(left: pl.DataFrame, right: pl.DataFrame) -> None:
    assert_frame_equal(left.sort(left.columns, nulls_last=True), right.sort(right.columns, nulls_last=True))


def test_cells_take_in_a_patient_who_moved_clinic_and_relapsed(con):
    merge_p1(con, clinic_id="frisco", relief_status="relapsed", relief_days=12, end_pct_change=-55.0)

    cells, changed, changed_relief, _ = cells_brought_up_to_date(con)

    for name, counted in count_anew(con).items():
        same_cells(cells[name], counted)
    # P1's relief left austin's cell for frisco's, at another day: both cells changed.
    assert changed["relief_cells"].select("clinic_id").to_series().sort().to_list() == ["austin", "frisco"]
    cohorts = changed_relief.collect()
    assert {"austin", "frisco"} <= set(cohorts.filter(pl.col("dimension") == "clinic")["dimension_value"])
    assert cohorts.filter(pl.col("dimension") == "network").height == 1


def test_cells_are_counted_anew_when_a_second_merge_came_before_the_statistics(con):
    merge_p1(con, clinic_id="frisco")
    # The statistics did not run (a run stopped, or an asset materialized alone), and P1 is merged again: the
    # rows kept as replaced are no longer those the cells were counted from.
    merge_p1(con, clinic_id="boise")

    assert cells_brought_up_to_date(con) is None


def test_cells_are_counted_anew_when_the_kept_ones_are_missing(con):
    merge_p1(con, clinic_id="frisco")
    con.execute(f"drop table {CELLS_SCHEMA}.relief_cells")

    assert cells_brought_up_to_date(con) is None


def test_relief_curves_of_some_cohorts_are_those_cohorts_curves_of_every_cohort():
    # Two clinic ids written alike in a clinic's splits ("a / b" and "a \u2215 b" both as "a \u2215 b"): their
    # splits are one cohort of both.
    rows = pl.DataFrame(
        [
            series("P1", clinic_id="a / b", relief_days=12, relief_status="relapsed"),
            series("P2", clinic_id="a \u2215 b", relief_days=30),
            series("P3", clinic_id="frisco", relief_days=20, relief_status="relapsed"),
            series("P4", clinic_id="frisco", primary_indication="ptsd", relief_days=40),
            series("P5", series_start_at=datetime(2026, 5, 4, 9), relief_days=25, relief_status="relapsed"),
        ]
    )
    cells = relief_cells(rows.lazy()).collect()
    whole = relief_survival_from_cells(cells.lazy()).collect()
    # The cohorts of P2's cell: its clinic (shared with P1), the network, depression, March 2026, ...
    wanted = cohorts_of_cells(cells.filter(pl.col("clinic_id") == "a \u2215 b").lazy(), (START_MONTH,), True).collect()
    some = relief_survival_from_cells(cells.lazy(), only=wanted.lazy()).collect()

    assert_frame_equal(some, whole.join(wanted, on=RATE_KEY, how="semi", nulls_equal=True))
    assert set(some["dimension"]) >= {"network", "clinic", "indication"}
    assert "frisco" not in set(some.filter(pl.col("dimension") == "clinic")["dimension_value"])
    assert some.filter(pl.col("dimension") == "clinic")["dimension_value"].unique().to_list() == ["a \u2215 b"]
    shared_split = some.filter(pl.col("dimension") == CLINIC_SPLITS[INDICATION])
    assert shared_split["dimension_value"].unique().to_list() == ["a \u2215 b / depression"]
    assert shared_split["at_risk"].max() == 2, "P1's and P2's clinics are one cohort in the split"
    network = some.filter(pl.col("dimension") == "network")
    assert network["at_risk"].max() == 5, "a cohort asked for is summed over every cell, not only the changed ones"


def relief_curves_brought_up_to_date(con) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the relief curves an incremental refresh works out after merge_p1, and the cohorts they replace."""
    cells, changes, changed_relief, _ = cells_brought_up_to_date(con)
    cohorts = changed_relief.collect()
    curves, _ = relief_survival_of(con, cells["relief_cells"], changes["relief_cells"], cohorts)
    return curves, cohorts


def relief_curves_counted_anew(con, cohorts: pl.DataFrame) -> pl.DataFrame:
    curves = relief_survival_from_cells(count_anew(con)["relief_cells"].lazy()).collect()
    return curves.join(cohorts, on=RATE_KEY, how="semi", nulls_equal=True)


def test_relief_curves_are_brought_up_to_date_from_the_kept_curves_counts(con):
    # P1, austin's only responder (censored at 30 days), moves to frisco and relapses on day 12.
    merge_p1(con, clinic_id="frisco", relief_status="relapsed", relief_days=12)

    assert kept_relief_counts(con, pl.DataFrame({column: ["x"] for column in RATE_KEY})) is not None
    curves, cohorts = relief_curves_brought_up_to_date(con)

    assert_frame_equal(curves, relief_curves_counted_anew(con, cohorts))
    clinics = curves.filter(pl.col("dimension") == "clinic")
    # austin is among the cohorts replaced, and has no curve left: its rows go.
    assert "austin" in set(cohorts.filter(pl.col("dimension") == "clinic")["dimension_value"])
    assert clinics.select("dimension_value", "day", "at_risk", "events", "censored", "survival").rows() == [
        ("frisco", 12, 1, 1, 0, 0.0)
    ]
    # The network's curve: P1 left day 30 for day 12, and was the only responder.
    network = curves.filter(pl.col("dimension") == "network")
    assert network.select("day", "at_risk", "events", "censored").rows() == [(12, 1, 1, 0)]


@pytest.mark.parametrize(
    "change_after_counting",
    [
        f"update {RELIEF_SURVIVAL} set events = events + 1 where dimension = 'network'",
        f"alter table {CELLS_SOURCE_TABLE} drop column relief_survival_hash",  # as an older version wrote it
    ],
    ids=["curves changed since", "no hash recorded"],
)
def test_relief_curves_are_summed_from_every_cell_when_the_kept_ones_cannot_be_trusted(con, change_after_counting):
    con.execute(change_after_counting)
    merge_p1(con, clinic_id="frisco", relief_status="relapsed", relief_days=12)

    curves, cohorts = relief_curves_brought_up_to_date(con)

    assert kept_relief_counts(con, cohorts) is None
    assert_frame_equal(curves, relief_curves_counted_anew(con, cohorts))
    assert curves.filter(pl.col("dimension") == "network").select("day", "events").rows() == [(12, 1)]
