"""The recomputed patients' rows an incremental refresh reads: from the rows this run's merges wrote, never
scanned for in tables of millions, and never another run's."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.incremental.scope import (
    RECOMPUTED_DATABASE,
    SCOPE_TABLE,
    attach_recomputed_rows,
    in_scope,
    merge_by_patient,
    recomputed_rows_table,
    scoped_rows,
)
from pipelines.resources import Warehouse
from pipelines.sql_models import sql_models

VALIDATED = "quarantine.assessments_validated"
STAGING = "staging.assessments"


@pytest.fixture
def con():
    """A connection laid out as a run's: the raw store and the run's recomputed rows attached; P1 and P9 are in
    scope (P9 a new patient)."""
    con = duckdb.connect()
    con.execute("attach ':memory:' as raw")
    attach_recomputed_rows(con)
    for schema in ("quarantine", "staging"):
        con.execute(f"create schema {schema}")
    con.execute(f"create table {SCOPE_TABLE} as select unnest(['P1', 'P9']) as patient_key")
    con.execute(
        f"""
        create table {VALIDATED} as select * from (values
            ('P1', 'phq9', timestamp '2026-01-05 09:00', 20, 'score', null, 1, 'a.csv', 1, null, false),
            ('P1', 'phq9', timestamp '2026-01-05 09:00', 20, 'score', null, 1, 'a.csv', 2, null, true),
            ('P2', 'phq9', timestamp '2026-01-06 09:00', 18, 'score', null, 0, 'a.csv', 3, null, false),
            ('P3', 'gad7', timestamp '2026-01-07 09:00', 99, 'score', null, null, 'a.csv', 4, 'out of range', false)
        ) as t(patient_id, instrument, administered_at, score, score_source, item_scores, phq9_item9, source_file,
               row_number, reason, is_exact_duplicate)
        """
    )
    staging = next(model for model in sql_models() if model.table == STAGING)
    con.execute(f"create view {STAGING} as {staging.select}")
    return con


def rows(con, relation: str) -> pl.DataFrame:
    frame = con.sql(f"select * from {relation}").pl()
    return frame.sort(frame.columns, nulls_last=True)


def rows_in_scope(con, relation: str) -> pl.DataFrame:
    return rows(con, f"(select * from {relation} where {in_scope()})")


def merge_p1_p9(con) -> None:
    """Merge P1's rows again (one score changed) and P9's first row, as the validation of an increment does."""
    merge_by_patient(
        con,
        VALIDATED,
        f"""
        select * replace (score + 1 as score) from {VALIDATED} where patient_id = 'P1'
        union all
        select 'P9', 'phq9', timestamp '2026-01-08 09:00', 25, 'score', null, 2, 'b.csv', 1, null, false
        """,
    )


def test_a_merged_table_is_read_from_the_rows_its_merge_wrote_which_are_its_rows_in_scope(con):
    # Before the merge, the table is scanned for the patients in scope.
    assert scoped_rows(con, VALIDATED) != recomputed_rows_table(VALIDATED)
    assert_frame_equal(rows(con, scoped_rows(con, VALIDATED)), rows_in_scope(con, VALIDATED))

    merge_p1_p9(con)

    assert scoped_rows(con, VALIDATED) == recomputed_rows_table(VALIDATED)
    assert_frame_equal(rows(con, scoped_rows(con, VALIDATED)), rows_in_scope(con, VALIDATED))
    assert rows(con, scoped_rows(con, VALIDATED))["score"].to_list() == [21, 21, 25]


def test_rows_a_merge_returns_for_patients_out_of_scope_leave_the_table_as_it_was(con):
    # P3's row has no patient in scope: returned again (as a reference table's rows are, read whole), it stays
    # once. P1's rows come back as P7's, a patient out of scope: P7 gets none, and P1's rows are gone.
    merge_by_patient(
        con,
        VALIDATED,
        f"""
        select * replace ('P7' as patient_id) from {VALIDATED} where patient_id = 'P1'
        union all
        select * from {VALIDATED} where patient_id = 'P3'
        """,
    )

    assert rows(con, VALIDATED)["patient_id"].to_list() == ["P2", "P3"]
    assert rows(con, scoped_rows(con, VALIDATED)).height == 0
    assert_frame_equal(rows(con, scoped_rows(con, VALIDATED)), rows_in_scope(con, VALIDATED))


def test_a_per_patient_view_in_scope_is_its_select_over_the_merged_rows_of_its_input(con):
    merge_p1_p9(con)

    scoped = scoped_rows(con, STAGING)

    # P1's exact duplicate is dropped by the view, as in the view's own rows.
    assert_frame_equal(rows(con, scoped), rows_in_scope(con, STAGING))
    assert rows(con, scoped).select("patient_id", "score").rows() == [("P1", 21), ("P9", 25)]
    # ... read from the merged rows: the view's input is a temporary view of them.
    input_view = con.sql(
        "select sql from duckdb_views() where view_name = 'scoped__quarantine__assessments_validated'"
    ).fetchall()[0][0]
    assert recomputed_rows_table(VALIDATED) in input_view


def test_a_run_never_reads_rows_another_run_merged(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "outcomes.duckdb"))
    with warehouse.connect() as con:
        con.execute(f"create table {recomputed_rows_table(VALIDATED)} as select 'P1' as patient_id")
        assert scoped_rows(con, VALIDATED) == recomputed_rows_table(VALIDATED)
    warehouse.close()  # the run ends

    with warehouse.connect() as con:
        kept = f"select count(*) from duckdb_tables() where database_name = '{RECOMPUTED_DATABASE}'"
        assert con.sql(kept).fetchall() == [(0,)]
    warehouse.close()
