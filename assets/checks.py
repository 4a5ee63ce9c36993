"""Blocking checks: when one fails, nothing is published and readers keep the previous warehouse.

Each check runs in the step that builds its table, right after it (the asset
declares the check's spec and returns its result): a separate Dagster step
per check cost more than most checks themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import duckdb
import polars as pl

from pipelines.analyst import formatted
from pipelines.database import key_of
from pipelines.incremental.scope import scope_is_every_patient, scoped_rows

GRAIN_CHECK = "grain_is_unique_and_not_null"


def checked_rows(con: duckdb.DuckDBPyConnection, table: str, per_patient: bool) -> str:
    """Return the rows a check reads: all of them, or in an incremental refresh of a per-patient table only the
    recomputed patients' rows (the others are as published, and the published warehouse passed these checks;
    the keys of per-patient rows never collide across patients, as every changed row puts both its old and its
    new patient in scope)."""
    if per_patient and not scope_is_every_patient(con):
        return scoped_rows(con, table)
    return table


Outcome = tuple[bool, dict]  # passed, metadata


def grain_is_unique_and_not_null(
    con: duckdb.DuckDBPyConnection, table: str, key_columns: tuple[str, ...], per_patient: bool
) -> Outcome:
    """Return whether the table's key columns are unique and never null."""
    rows = checked_rows(con, table, per_patient)
    any_null = " or ".join(f"{column} is null" for column in key_columns)
    # The bitmaps take two passes over the rows: they pay on a whole table, not on the few patients' rows an
    # incremental refresh checks, whose key hashes are counted in one pass.
    whole_table = rows == table
    counted = (
        row_number_key_counts(con, rows, key_columns, any_null) if ROW_NUMBER in key_columns and whole_table else None
    )
    if counted is None:
        large = whole_table and con.execute(f"select count(*) from {table}").fetchall()[0][0] >= SORTED_HASHES_FROM_ROWS
        counted = hashed_key_counts(con, rows, key_columns, any_null, large)
    duplicate_keys, null_keys = counted
    return duplicate_keys == 0 and null_keys == 0, {"duplicate_keys": duplicate_keys, "null_keys": null_keys}


# From this many rows a table of their distinct key hashes outgrows the processor's caches, and sorting the
# hashes finds the repeats sooner (the sixteen million assessments of a million patients: 1.0 s against 1.6 to
# 2.5 s); below it, counting them is the faster (at 100,000 patients, by a few milliseconds a table).
SORTED_HASHES_FROM_ROWS = 8_000_000


def hashed_key_counts(
    con: duckdb.DuckDBPyConnection, rows: str, key_columns: tuple[str, ...], any_null: str, large: bool = False
) -> tuple[int, int]:
    """Return the rows that repeat a key and the rows with a null key part, counting distinct key hashes, or for
    a large table, the hashes equal to the one before them in sorted order (the same number)."""
    keys = ", ".join(key_columns)
    # Distinct 64-bit hashes of the key are far cheaper to count than distinct keys. Equal keys always
    # hash alike, so no duplicate goes unseen; when the hashes say there are duplicates (or two keys
    # collide, about once in 10^12 checks of a million rows), the keys themselves are counted.
    if large:
        counts = f"""
            select count(*) filter (where key_hash = previous_hash), count(*) filter (where is_null_key) from (
                select key_hash, lag(key_hash) over (order by key_hash) as previous_hash, is_null_key
                from (select hash({keys}) as key_hash, {any_null} as is_null_key from {rows})
            )
        """
    else:
        counts = f"select count(*) - count(distinct hash({keys})), count(*) filter (where {any_null}) from {rows}"
    duplicate_keys, null_keys = con.execute(counts).fetchall()[0]
    if duplicate_keys:
        duplicate_keys = con.execute(f"select count(*) - count(distinct ({keys})) from {rows}").fetchall()[0][0]
    return duplicate_keys, null_keys


# The rows of a file are numbered 1, 2, 3, ...: the quarantine tables are keyed by file and row number.
ROW_NUMBER = "row_number"
# One bitmap of row numbers per file: 128 MB of bitmaps at most, else the key hashes are counted.
ROW_NUMBER_BITMAP_LIMIT_BITS = 1 << 30


def row_number_key_counts(
    con: duckdb.DuckDBPyConnection, rows: str, key_columns: tuple[str, ...], any_null: str
) -> tuple[int, int] | None:
    """Return the rows that repeat a (file columns, row_number) key and the rows with a null key part, counted
    exactly with one bitmap of row numbers per file; None when the bitmaps would be too large.

    Setting a bit per row is some twenty times faster than hashing the keys of millions of rows into a table
    of distinct values (0.1 s against 2.6 s for a million patients' assessments). A row without a row number
    sets no bit: it is counted as a null key.
    """
    files = ", ".join(column for column in key_columns if column != ROW_NUMBER)
    low, high, files_seen, null_keys = con.execute(
        f"select min({ROW_NUMBER}), max({ROW_NUMBER}), count(distinct ({files})), count(*) filter (where {any_null}) "
        f"from {rows}"
    ).fetchall()[0]
    if low is None:
        return 0, null_keys
    if files_seen * (high - low + 1) > ROW_NUMBER_BITMAP_LIMIT_BITS:
        return None
    duplicate_keys = con.execute(
        f"""
        select coalesce(sum(numbered - bit_count(numbers)), 0)::bigint from (
            select count({ROW_NUMBER}) as numbered, bitstring_agg({ROW_NUMBER}, {low}, {high}) as numbers
            from {rows}
            group by {files}
        )
        """
    ).fetchall()[0][0]
    return duplicate_keys, null_keys


def no_row_is_lost(con: duckdb.DuckDBPyConnection) -> Outcome:
    accounts = con.sql("select * from quarantine.file_accounts").pl()
    balance = accounts["rows_accepted"] + accounts["rows_rejected"] + accounts["duplicates_removed"]
    lines = accounts["header_lines"] + accounts["blank_lines"] + accounts["continuation_lines"] + accounts["rows_read"]
    # Sources without lines (FHIR, spreadsheets) have no line account: null never fails the comparison.
    lines_balance = (accounts["lines_read"].is_null() | (accounts["lines_read"] == lines)).all()
    return (
        bool((accounts["rows_read"] == balance).all()) and bool(lines_balance),
        {"row_accounts": dg.MetadataValue.md(formatted(accounts.columns, accounts.rows(), "markdown"))},
    )


def scores_within_instrument_range(con: duckdb.DuckDBPyConnection) -> Outcome:
    outside = con.execute(
        f"""
        select count(*) from {checked_rows(con, "staging.assessments", per_patient=True)} as a
        left join seeds.instruments as i using (instrument)
        where i.instrument is null or a.score is null or a.score not between i.score_min and i.score_max
        """
    ).fetchall()[0][0]
    return outside == 0, {"scores_outside_range": outside}


def every_series_has_an_infusion(con: duckdb.DuckDBPyConnection) -> Outcome:
    empty = con.execute(
        f"""
        select count(*) from {checked_rows(con, "marts.treatment_series", per_patient=True)} as s
        where s.infusion_count < 1 or not exists (
            select 1 from staging.infusions as i
            where i.patient_id = s.patient_id and i.infused_at = s.series_start_at
        )
        """
    ).fetchall()[0][0]
    return empty == 0, {"series_without_infusion": empty}


# table: (check name, description, check) beyond the grain check every table has.
MORE_CHECKS: dict[str, list[tuple[str, str, Callable[[duckdb.DuckDBPyConnection], Outcome]]]] = {
    "quarantine.file_accounts": [
        (
            "no_row_is_lost",
            (
                "Per file: rows read = rows accepted + rows rejected + exact duplicates removed; per CSV, "
                "lines read = header, blank and continuation lines + rows read."
            ),
            no_row_is_lost,
        )
    ],
    "staging.assessments": [
        (
            "scores_within_instrument_range",
            "Every accepted score lies within its instrument's range in seeds.instruments.",
            scores_within_instrument_range,
        )
    ],
    "marts.treatment_series": [
        (
            "every_series_has_an_infusion",
            "Every series counts at least one infusion and has its first infusion among the accepted ones.",
            every_series_has_an_infusion,
        )
    ],
}


def check_specs(table: str, key_columns: tuple[str, ...]) -> list[dg.AssetCheckSpec]:
    """Return the blocking checks of a table: its grain and any in MORE_CHECKS."""
    asset = key_of(table)
    keys = ", ".join(key_columns)
    return [
        dg.AssetCheckSpec(
            GRAIN_CHECK,
            asset=asset,
            blocking=True,
            description=f"({keys}) identifies one row of {table}: unique, never null.",
        ),
        *[
            dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
            for name, description, _ in MORE_CHECKS.get(table, [])
        ],
    ]


# Rows compared at a time, so that the comparison's shifted columns stay small beside the frames being written
# (for the fifteen million follow-ups of a million patients at once, some 300 MB of them).
ORDER_CHECK_ROWS = 1_000_000


def grain_outcome_of_ordered_frame(frame: pl.DataFrame, key_columns: tuple[str, ...]) -> Outcome | None:
    """Return the grain check's outcome for the frame a table is written from, when its rows come in strictly
    increasing key order and no key part is null: then no key can repeat. None when the frame does not show
    it, and the table's keys are counted instead.

    The outcome engine writes its tables in patient, then series order: one comparison with the row before
    is several times faster than counting distinct keys in the warehouse (2.9 s for the fifteen million
    follow-ups of a million patients). Any strict total order proves distinct keys, so an enum is compared
    by its codes.
    """
    keys = [
        pl.col(column).to_physical() if frame.schema[column] in (pl.Enum, pl.Categorical) else pl.col(column)
        for column in key_columns
    ]
    follows = pl.lit(False)  # the row's key is greater than the previous row's, compared column by column
    for key in reversed(keys):
        follows = (key > key.shift(1)) | ((key == key.shift(1)) & follows)
    # Each slice starts one row early, so that its first row is compared with the row before it.
    for start in range(0, max(frame.height - 1, 1), ORDER_CHECK_ROWS):
        rows = frame.slice(start, ORDER_CHECK_ROWS + 1)
        if rows.select(pl.any_horizontal(key.is_null() for key in keys).any() | ~follows.slice(1).all()).item():
            return None
    return True, {"duplicate_keys": 0, "null_keys": 0}


def check_results(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key_columns: tuple[str, ...],
    per_patient: bool,
    grain: Outcome | None = None,
) -> list[dg.AssetCheckResult]:
    """Return the results of check_specs(table, key_columns), run on the table just built.

    grain: the grain check's outcome when it is already known (grain_outcome_of_ordered_frame of the frame the
    checked rows were written from); otherwise the table's keys are counted.
    """
    outcomes = [
        (GRAIN_CHECK, grain or grain_is_unique_and_not_null(con, table, key_columns, per_patient)),
        *[(name, check(con)) for name, _, check in MORE_CHECKS.get(table, [])],
    ]
    return [
        dg.AssetCheckResult(asset_key=key_of(table), check_name=name, passed=passed, metadata=metadata)
        for name, (passed, metadata) in outcomes
    ]
