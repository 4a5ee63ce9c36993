"""The grain check's two fast counts give what counting distinct keys gives, on hand-made tables."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import assets.checks
from assets.checks import GRAIN_CHECK, check_results, grain_is_unique_and_not_null, grain_outcome_of_ordered_frame

# Seven rows: (a.csv, 2) twice, (null, 3) twice, and one row without a row number.
QUARANTINE_ROWS = [
    ("a.csv", 1, "x"),
    ("a.csv", 2, "x"),
    ("b.csv", 1, "x"),
    ("a.csv", 2, "y"),
    (None, 3, "x"),
    (None, 3, "x"),
    ("b.csv", None, "x"),
]


@pytest.fixture
def con():
    database = duckdb.connect()
    database.execute("create table quarantined (source_file varchar, row_number bigint, record_type varchar)")
    database.executemany("insert into quarantined values (?, ?, ?)", QUARANTINE_ROWS)
    yield database
    database.close()


@pytest.mark.parametrize("counted_by", ["row-number bitmaps", "distinct key hashes", "sorted key hashes"])
@pytest.mark.parametrize(
    ("key_columns", "duplicates"),
    [
        # (a.csv, 2) and (null, 3) each have a second copy.
        (("source_file", "row_number"), 2),
        # With the record type, (a.csv, 2) is two keys: only (null, 3, x) repeats.
        (("source_file", "row_number", "record_type"), 1),
    ],
)
def test_row_number_keys_are_counted_alike_by_bitmaps_and_by_hashes(
    con, monkeypatch, counted_by, key_columns, duplicates
):
    if counted_by != "row-number bitmaps":  # no bitmap fits: the key hashes are counted
        monkeypatch.setattr(assets.checks, "ROW_NUMBER_BITMAP_LIMIT_BITS", 0)
    if counted_by == "sorted key hashes":  # as for a table of millions of rows
        monkeypatch.setattr(assets.checks, "SORTED_HASHES_FROM_ROWS", 0)
    passed, metadata = grain_is_unique_and_not_null(con, "quarantined", key_columns, per_patient=False)
    # Three rows lack a key part: the two without a file and the one without a row number.
    assert (passed, metadata) == (False, {"duplicate_keys": duplicates, "null_keys": 3})


def test_row_number_bitmaps_pass_a_table_of_distinct_numbered_rows(con):
    con.execute("delete from quarantined where source_file is null or row_number is null or record_type = 'y'")
    assert grain_is_unique_and_not_null(con, "quarantined", ("source_file", "row_number"), per_patient=False) == (
        True,
        {"duplicate_keys": 0, "null_keys": 0},
    )


def grain_result(con, frame: pl.DataFrame):
    ordered = grain_outcome_of_ordered_frame(frame, ("patient_id", "infused_at"))
    (result,) = check_results(con, "main.sessions", ("patient_id", "infused_at"), False, grain=ordered)
    assert result.check_name == GRAIN_CHECK
    return result.passed, result.metadata["duplicate_keys"].value, result.metadata["null_keys"].value


@pytest.mark.parametrize(
    "patient_id",
    [
        pl.Series(["p1", "p1", "p2", "p3", "p3"]),
        # An enum is compared by its codes, whatever order its categories are in.
        pl.Series(["p3", "p3", "p1", "p2", "p2"], dtype=pl.Enum(["p3", "p1", "p2"])),
    ],
    ids=["text", "enum"],
)
def test_a_frame_in_strictly_increasing_key_order_proves_the_grain_without_reading_the_table(patient_id):
    frame = pl.DataFrame({"patient_id": patient_id, "infused_at": [5, 9, 1, 1, 4]})
    # No table main.sessions exists: reading it would fail, so the frame's order alone decided.
    assert grain_result(duckdb.connect(), frame) == (True, 0, 0)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # p2 at 1 twice, in order: not strictly increasing, so the table is counted.
        ({"patient_id": ["p1", "p1", "p2", "p2"], "infused_at": [5, 9, 1, 1]}, (False, 1, 0)),
        # p1 at 7 twice, the second copy in the second slice: found by its first row's look back.
        ({"patient_id": ["p1", "p1", "p1", "p2"], "infused_at": [5, 7, 7, 1]}, (False, 1, 0)),
        # Distinct keys out of order: counted, and the grain holds.
        ({"patient_id": ["p2", "p1", "p1"], "infused_at": [1, 9, 5]}, (True, 0, 0)),
        # A null key part in an otherwise increasing frame: counted, and reported.
        ({"patient_id": ["p1", "p2", None], "infused_at": [5, 1, 7]}, (False, 0, 1)),
    ],
)
def test_a_frame_that_does_not_prove_its_grain_leaves_the_table_to_be_counted(monkeypatch, rows, expected):
    monkeypatch.setattr(assets.checks, "ORDER_CHECK_ROWS", 2)  # rows compared two at a time, across slices
    frame = pl.DataFrame(rows, schema={"patient_id": pl.String, "infused_at": pl.Int64})
    database = duckdb.connect()
    database.register("frame_rows", frame)
    database.execute("create table main.sessions as select * from frame_rows")
    assert grain_result(database, frame) == expected
