"""Which patients this refresh recomputes: every one, or only those whose rows are new, changed or judged anew."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

from assets.ingest import RECORD_TYPES, source_table
from pipelines.incremental import (
    FILE_STATES_TABLE,
    PLAN_TABLE,
    SCOPE_TABLE,
    drop_relation,
    patient_key,
    relation_exists,
    table_exists,
)
from pipelines.outcomes.rules import OutcomeRules
from pipelines.resources import RulesResource, Warehouse, last_refresh, rules_from

# Rows the as-of time judges (spec §8: future-dated rows are rejected), by validated table and timestamp.
DATED_ROWS = {"quarantine.infusions_validated": "infused_at", "quarantine.assessments_validated": "administered_at"}


def reason_to_recompute_everyone(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, rules: OutcomeRules
                                 ) -> str | None:
    """Return why every patient must be recomputed, or None when only patients with changes need be."""
    if not warehouse.reads_changes_only:
        return warehouse.full_read_reason
    last = last_refresh(con)
    if json.loads(last["rules"]) != dataclasses.asdict(rules):
        return "the clinical parameters changed since the last refresh"
    if last["as_of"].year != warehouse.as_of_time.year:
        return "the as-of year changed: birth years are judged against the new year"
    return None


def patients_to_recompute(con: duckdb.DuckDBPyConnection, sources: list[str], previous_as_of: datetime,
                          as_of: datetime) -> str:
    """Return SQL of (patient_key, reason) for every patient with a reason to be recomputed."""
    parts = [f"select patient_key, 'new, changed or removed rows' as reason from raw.changed_patients__{name}"
             for name in sources if table_exists(con, f"raw.changed_patients__{name}")]
    earlier = min(previous_as_of, as_of)
    for table, column in DATED_ROWS.items():
        # A row dated after the earlier as-of time was future then and is not now (or the other way round),
        # or is future both times and its reason names the as-of time: few rows, all recomputed.
        parts.append(f"select {patient_key()}, 'dated after the last or this as-of time' from {table} "
                     f"where {column} > '{earlier.isoformat()}'")
    for name in removed_sources(con, sources):
        parts += [f"select {patient_key()}, 'source removed' from {source_table(name, record_type)}"
                  for record_type in RECORD_TYPES if relation_exists(con, source_table(name, record_type))]
    return " union all ".join(parts)


def removed_sources(con: duckdb.DuckDBPyConnection, sources: list[str]) -> list[str]:
    """Return the sources the kept raw tables hold that the inbox no longer has."""
    if not table_exists(con, FILE_STATES_TABLE):
        return []
    kept = [row[0] for row in con.execute(f"select distinct source from {FILE_STATES_TABLE}").fetchall()]
    return sorted(set(kept) - set(sources))


def forget_sources(con: duckdb.DuckDBPyConnection, raw_rows: Path, names: list[str]) -> None:
    """Drop the kept rows of sources the inbox no longer has."""
    for name in names:
        for record_type in RECORD_TYPES:
            drop_relation(con, source_table(name, record_type))
        shutil.rmtree(raw_rows / name, ignore_errors=True)
        con.execute(f"drop table if exists raw.changed_patients__{name}")
        con.execute(f"delete from {FILE_STATES_TABLE} where source = ?", [name])


def refresh_scope_asset(sources: list[str]) -> dg.AssetsDefinition:
    """Return the asset that decides which patients this refresh recomputes."""

    @dg.asset(
        key=["raw", "refresh_scope"],
        group_name="raw",
        deps=[dg.AssetKey(["raw", record_type]) for record_type in RECORD_TYPES],
        kinds={"duckdb"},
        description="The patients this refresh recomputes (patient_key, reason): every patient in a full refresh; "
        "after a published one, those with new, changed or removed rows or rows the new as-of time judges anew.",
    )
    def refresh_scope(warehouse: Warehouse, rules: RulesResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            reason = reason_to_recompute_everyone(con, warehouse, rules_from(rules))
            removed = removed_sources(con, sources)
            if reason is None:
                previous_as_of = last_refresh(con)["as_of"]
                con.execute(f"""
                    create or replace table {SCOPE_TABLE} as
                    select patient_key, string_agg(distinct reason, '; ' order by reason) as reason
                    from ({patients_to_recompute(con, sources, previous_as_of, warehouse.as_of_time)})
                    group by patient_key
                """)
                patients = con.execute(f"select count(*) from {SCOPE_TABLE}").fetchone()[0]
                plan = (False, f"incremental: {patients} patient{'' if patients == 1 else 's'} recomputed", patients)
            else:
                con.execute(f"create or replace table {SCOPE_TABLE} (patient_key varchar, reason varchar)")
                plan = (True, f"full: {reason}", None)
            forget_sources(con, warehouse.raw_rows_path, removed)
            con.execute(f"create or replace table {PLAN_TABLE} (every_patient boolean, reason varchar, patients bigint)")
            con.execute(f"insert into {PLAN_TABLE} values (?, ?, ?)", list(plan))
            reasons = con.execute(f"select reason, count(*) from {SCOPE_TABLE} group by all order by 1").fetchall()
        return dg.MaterializeResult(metadata={
            "refresh": plan[1],
            "patients_recomputed": dg.MetadataValue.json(dict(reasons)) if reasons else "every patient",
        })

    return refresh_scope
