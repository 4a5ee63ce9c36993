"""Blocking checks: when one fails, nothing is published and readers keep the previous warehouse."""

from __future__ import annotations

import dagster as dg

from assets.statistics import STATISTICS_MARTS
from assets.tables import key_of
from pipelines.reports.summary import markdown_table
from pipelines.incremental import in_scope, scope_is_every_patient
from pipelines.resources import Warehouse
from pipelines.sql_models import sql_models


def checked_rows(con, table: str, per_patient: bool) -> str:
    """Return the rows a check reads: all of them, or in an incremental refresh of a per-patient table only the
    recomputed patients' rows (the others are as published, and the published warehouse passed these checks;
    the keys of per-patient rows never collide across patients, as every changed row puts both its old and its
    new patient in scope)."""
    if per_patient and not scope_is_every_patient(con):
        return f"(select * from {table} where {in_scope()})"
    return table


def grain_check(table: str, key_columns: tuple[str, ...], per_patient: bool = False) -> dg.AssetChecksDefinition:
    """Return a check that the table's key columns are unique and never null."""
    keys = ", ".join(key_columns)
    any_null = " or ".join(f"{column} is null" for column in key_columns)

    @dg.asset_check(
        asset=key_of(table),
        name="grain_is_unique_and_not_null",
        blocking=True,
        description=f"({keys}) identifies one row of {table}: unique, never null.",
    )
    def check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            rows = checked_rows(con, table, per_patient)
            # Distinct 64-bit hashes of the key are far cheaper to count than distinct keys. Equal keys always
            # hash alike, so no duplicate goes unseen; when the hashes say there are duplicates (or two keys
            # collide, about once in 10^12 checks of a million rows), the keys themselves are counted.
            duplicate_keys, null_keys = con.execute(
                f"select count(*) - count(distinct hash({keys})), count(*) filter (where {any_null}) from {rows}"
            ).fetchone()
            if duplicate_keys:
                duplicate_keys = con.execute(f"select count(*) - count(distinct ({keys})) from {rows}").fetchone()[0]
        return dg.AssetCheckResult(
            passed=duplicate_keys == 0 and null_keys == 0,
            metadata={"duplicate_keys": duplicate_keys, "null_keys": null_keys},
        )

    check.__name__ = "grain_" + table.replace(".", "_")
    return check


@dg.asset_check(
    asset=key_of("quarantine.file_accounts"),
    name="no_row_is_lost",
    blocking=True,
    description="Per file: rows read = rows accepted + rows rejected + exact duplicates removed.",
)
def no_row_is_lost(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        accounts = con.sql("select * from quarantine.file_accounts").pl()
    balance = accounts["rows_accepted"] + accounts["rows_rejected"] + accounts["duplicates_removed"]
    return dg.AssetCheckResult(
        passed=bool((accounts["rows_read"] == balance).all()),
        metadata={"row_accounts": dg.MetadataValue.md(markdown_table(accounts.rows(), accounts.columns))},
    )


@dg.asset_check(
    asset=key_of("staging.assessments"),
    name="scores_within_instrument_range",
    blocking=True,
    description="Every accepted score lies within its instrument's range in seeds.instruments.",
)
def scores_within_instrument_range(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        outside = con.execute(
            f"""
            select count(*) from {checked_rows(con, "staging.assessments", per_patient=True)} as a
            left join seeds.instruments as i using (instrument)
            where i.instrument is null or a.score is null or a.score not between i.score_min and i.score_max
            """
        ).fetchone()[0]
    return dg.AssetCheckResult(passed=outside == 0, metadata={"scores_outside_range": outside})


@dg.asset_check(
    asset=key_of("marts.treatment_series"),
    name="every_series_has_an_infusion",
    blocking=True,
    description="Every series counts at least one infusion and has its first infusion among the accepted ones.",
)
def every_series_has_an_infusion(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        empty = con.execute(
            f"""
            select count(*) from {checked_rows(con, "marts.treatment_series", per_patient=True)} as s
            where s.infusion_count < 1 or not exists (
                select 1 from staging.infusions as i
                where i.patient_id = s.patient_id and i.infused_at = s.series_start_at
            )
            """
        ).fetchone()[0]
    return dg.AssetCheckResult(passed=empty == 0, metadata={"series_without_infusion": empty})


grain_checks = [grain_check(model.table, model.key_columns, model.is_per_patient) for model in sql_models()] + [
    grain_check(f"marts.{name}", key_columns) for name, (_, key_columns) in STATISTICS_MARTS.items()
]
all_checks = [*grain_checks, no_row_is_lost, scores_within_instrument_range, every_series_has_an_infusion]
