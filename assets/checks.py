"""Blocking checks: when one fails, nothing is published and readers keep the previous warehouse.

Each check runs in the step that builds its table, right after it (the asset
declares the check's spec and returns its result): a separate Dagster step
per check cost more than most checks themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import duckdb

from pipelines.analyst import formatted
from pipelines.database import key_of
from pipelines.incremental.scope import in_scope, scope_is_every_patient

GRAIN_CHECK = "grain_is_unique_and_not_null"


def checked_rows(con: duckdb.DuckDBPyConnection, table: str, per_patient: bool) -> str:
    """Return the rows a check reads: all of them, or in an incremental refresh of a per-patient table only the
    recomputed patients' rows (the others are as published, and the published warehouse passed these checks;
    the keys of per-patient rows never collide across patients, as every changed row puts both its old and its
    new patient in scope)."""
    if per_patient and not scope_is_every_patient(con):
        return f"(select * from {table} where {in_scope()})"
    return table


Outcome = tuple[bool, dict]  # passed, metadata


def grain_is_unique_and_not_null(
    con: duckdb.DuckDBPyConnection, table: str, key_columns: tuple[str, ...], per_patient: bool
) -> Outcome:
    """Return whether the table's key columns are unique and never null."""
    keys = ", ".join(key_columns)
    any_null = " or ".join(f"{column} is null" for column in key_columns)
    rows = checked_rows(con, table, per_patient)
    # Distinct 64-bit hashes of the key are far cheaper to count than distinct keys. Equal keys always
    # hash alike, so no duplicate goes unseen; when the hashes say there are duplicates (or two keys
    # collide, about once in 10^12 checks of a million rows), the keys themselves are counted.
    duplicate_keys, null_keys = con.execute(
        f"select count(*) - count(distinct hash({keys})), count(*) filter (where {any_null}) from {rows}"
    ).fetchall()[0]
    if duplicate_keys:
        duplicate_keys = con.execute(f"select count(*) - count(distinct ({keys})) from {rows}").fetchall()[0][0]
    return duplicate_keys == 0 and null_keys == 0, {"duplicate_keys": duplicate_keys, "null_keys": null_keys}


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


def check_results(
    con: duckdb.DuckDBPyConnection, table: str, key_columns: tuple[str, ...], per_patient: bool
) -> list[dg.AssetCheckResult]:
    """Return the results of check_specs(table, key_columns), run on the table just built."""
    outcomes = [
        (GRAIN_CHECK, grain_is_unique_and_not_null(con, table, key_columns, per_patient)),
        *[(name, check(con)) for name, _, check in MORE_CHECKS.get(table, [])],
    ]
    return [
        dg.AssetCheckResult(asset_key=key_of(table), check_name=name, passed=passed, metadata=metadata)
        for name, (passed, metadata) in outcomes
    ]
