"""Whether a refresh may continue from what the last one kept, and which patients it recomputes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import duckdb

from pipelines.database import last_refresh, relation_exists, table_exists
from pipelines.incremental.raw_store import (
    changed_patients_table,
    changed_reference_table,
    forget_sources,
    removed_sources,
    source_table,
)
from pipelines.incremental.scope import SCOPE_TABLE, patient_key, write_plan
from pipelines.ingest.contract import PER_PATIENT_RECORD_TYPES
from pipelines.outcomes.rules import OutcomeRules

ROOT = Path(__file__).resolve().parents[2]
# What computes the raw and per-patient tables: when any of it changes, the kept state is not reusable.
CODE_FOLDERS = ("sql", "pipelines/ingest", "pipelines/incremental", "pipelines/outcomes", "assets")
# The raw store's stamp while a run writes it: it matches no published warehouse.
BUILDING = "building"
STORE_STATE_TABLE = "main.store_state"
# The raw rows the as-of time judges (spec §8: future-dated rows are rejected), by record type and timestamp.
DATED_ROWS = {"raw.infusions": "infused_at", "raw.assessments": "administered_at"}
# An offset moves a timestamp by at most 14 hours (iso_timestamp accepts -14:00 to +14:00): 5 days of slack
# on the date as sent finds every row whose local time can fall between the two as-of times, with room.
OFFSET_SLACK_DAYS = 5


def code_fingerprint() -> str:
    """Return a digest of the SQL, the ingest, incremental and outcome code, and the DuckDB and Polars versions."""
    digest = hashlib.sha256(f"duckdb {version('duckdb')} polars {version('polars')}".encode())
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".sql", ".py", ".csv", ".yaml"):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def stamp_raw_store(raw_store: Path, generation: str, published_bytes: int | None = None) -> None:
    """Stamp the raw store with a generation (BUILDING while a run writes it) and the published file's size."""
    with duckdb.connect(str(raw_store)) as raw:
        raw.execute(f"create table if not exists {STORE_STATE_TABLE} (generation varchar, published_bytes bigint)")
        raw.execute(f"delete from {STORE_STATE_TABLE}")
        raw.execute(f"insert into {STORE_STATE_TABLE} values (?, ?)", [generation, published_bytes])


def raw_store_stamp(raw_store: Path) -> tuple[str | None, int | None]:
    """Return the generation the raw store is stamped with and the size its warehouse was published at."""
    with duckdb.connect(str(raw_store), read_only=True) as raw:
        if not table_exists(raw, STORE_STATE_TABLE):
            return None, None
        return raw.execute(f"select max(generation), max(published_bytes) from {STORE_STATE_TABLE}").fetchall()[0]


def first_line(error: Exception, limit: int = 160) -> str:
    """Return the first line of an error's message, cut to a length a log line can hold."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def reason_to_read_everything(published: Path, raw_store: Path, refresh_mode: str, clinic_timezone: str) -> str | None:
    """Return why the kept raw tables cannot be reused, or None when they can."""
    if refresh_mode == "full":
        return "a full refresh was asked for"
    if not published.exists():
        return "nothing is published yet"
    if not raw_store.exists():
        return f"no raw tables are kept from the last refresh ({raw_store.name})"
    try:
        stamp, published_bytes = raw_store_stamp(raw_store)
    except duckdb.Error as error:
        return f"the kept raw tables cannot be read ({first_line(error)}); they are read again from the inbox"
    if published_bytes is not None and published.stat().st_size != published_bytes:
        # DuckDB may open a cut file and fail only at a block it reaches later: the size finds it first.
        return (
            f"the published warehouse cannot be read (it has {published.stat().st_size:,} bytes, but was published "
            f"with {published_bytes:,}: damaged since); it is rebuilt from the inbox"
        )
    try:
        with duckdb.connect(str(published), read_only=True) as con:
            last = last_refresh(con)
    except duckdb.Error as error:
        return f"the published warehouse cannot be read ({first_line(error)}); it is rebuilt from the inbox"
    if last is None or last.get("generation") is None:
        return "the published warehouse records no refresh this version can continue from"
    if stamp != last["generation"]:
        return "the kept raw tables are not those of the published warehouse (a refresh failed or was stopped)"
    if last.get("code_fingerprint") != code_fingerprint():
        return "the pipeline's SQL or code changed since the last refresh"
    if last.get("clinic_timezone") != clinic_timezone:
        return "the clinic timezone changed"
    return None


def reason_to_recompute_everyone(
    con: duckdb.DuckDBPyConnection,
    full_read_reason: str | None,
    rules: OutcomeRules,
    as_of: datetime,
    sources: list[str] = (),
) -> str | None:
    """Return why every patient must be recomputed, or None when only patients with changes need be."""
    if full_read_reason is not None:
        return full_read_reason
    changed = [
        name
        for name in sources
        if table_exists(con, changed_reference_table(name))
        and con.execute(f"select count(*) from {changed_reference_table(name)}").fetchall()[0][0]
    ]
    removed = [name for name in removed_sources(con, sources) if relation_exists(con, source_table(name, "clinics"))]
    if changed or removed:
        return "the clinics changed: every patient's timestamps are read again in their clinic's time zone"
    last = last_refresh(con)
    if json.loads(last["rules"]) != rules.model_dump():
        return "the clinical parameters changed since the last refresh"
    if last["as_of"].year != as_of.year:
        return "the as-of year changed: birth years are judged against the new year"
    return None


def patients_to_recompute(
    con: duckdb.DuckDBPyConnection, sources: list[str], previous_as_of: datetime, as_of: datetime
) -> str:
    """Return SQL of (patient_key, reason) for every patient with a reason to be recomputed.

    Reads this run's raw rows only (never an earlier run's later layers): the iso_timestamp macro of
    sql/functions.sql must be defined on the connection.
    """
    parts = [
        f"select patient_key, 'new, changed or removed rows' as reason from {changed_patients_table(name)}"
        for name in sources
        if table_exists(con, changed_patients_table(name))
    ]
    earlier, later = min(previous_as_of, as_of), max(previous_as_of, as_of)
    first_text = (earlier.date() - timedelta(days=OFFSET_SLACK_DAYS)).isoformat()
    last_text = (later.date() + timedelta(days=OFFSET_SLACK_DAYS + 1)).isoformat()
    # A row dated after the earlier as-of time and at or before the later one was future then and is not now
    # (or the other way round): its patient is recomputed. A row future at both times is rejected alike both
    # times (its reason does not name the as-of time), so a date typed years ahead recomputes no one night
    # after night. ISO dates sort as text, so a text comparison finds the few candidates before any is parsed.
    candidates = " union all ".join(
        f"select {patient_key()} as patient_key, {column} as value from {table} "
        f"where ltrim({column}) >= '{first_text}' and ltrim({column}) < '{last_text}'"
        for table, column in DATED_ROWS.items()
    )
    default_zone = "getvariable('clinic_timezone')"
    earlier_instant = f"timezone({default_zone}, timestamp '{earlier.isoformat()}')"
    later_instant = f"timezone({default_zone}, timestamp '{later.isoformat()}')"
    # Each candidate's zone as validation will read it (spec §10.1), from this run's raw rows; a zone validation
    # will refuse counts as the default here (the run fails on it later). Only the candidates' patients are
    # looked up: the zones of a million patients took 0.5 s.
    parts.append(
        f"""
        select patient_key, 'dated between the last and this as-of time' from (
            with candidates as materialized ({candidates}),

            zones as (
                select
                    {patient_key("p.patient_id")} as patient_key,
                    coalesce(any_value(c.timezone), {default_zone}) as zone
                from raw.patients as p
                left join (
                    select blank_to_null(clinic_id) as clinic_id, blank_to_null(timezone) as timezone from raw.clinics
                    where blank_to_null(timezone) in (select name from pg_timezone_names())
                ) as c on blank_to_null(p.clinic_id) = c.clinic_id
                where {patient_key("p.patient_id")} in (select patient_key from candidates)
                group by all
            )

            select patient_key from (
                select
                    candidates.patient_key,
                    iso_timestamp(value, coalesce(zone, {default_zone})) as local_time,
                    coalesce(zone, {default_zone}) as zone
                from candidates left join zones using (patient_key)
            )
            where local_time > timezone(zone, {earlier_instant}) and local_time <= timezone(zone, {later_instant})
        )
        """
    )
    for name in removed_sources(con, sources):
        parts += [
            f"select {patient_key()}, 'source removed' from {source_table(name, record_type)}"
            for record_type in PER_PATIENT_RECORD_TYPES
            if relation_exists(con, source_table(name, record_type))
        ]
    return " union all ".join(parts)


def plan_refresh_scope(
    con: duckdb.DuckDBPyConnection,
    sources: list[str],
    full_read_reason: str | None,
    rules: OutcomeRules,
    as_of: datetime,
    raw_rows: Path,
) -> tuple[str, dict[str, int]]:
    """Decide and record which patients this refresh recomputes; return the plan's line and patients by reason."""
    reason = reason_to_recompute_everyone(con, full_read_reason, rules, as_of, sources)
    removed = removed_sources(con, sources)
    if reason is None:
        previous_as_of = last_refresh(con)["as_of"]
        con.execute(f"""
            create or replace table {SCOPE_TABLE} as
            select patient_key, string_agg(distinct reason, '; ' order by reason) as reason
            from ({patients_to_recompute(con, sources, previous_as_of, as_of)})
            group by patient_key
        """)
        patients = con.execute(f"select count(*) from {SCOPE_TABLE}").fetchall()[0][0]
        line = f"incremental: {patients} patient{'' if patients == 1 else 's'} recomputed"
        write_plan(con, False, line, patients)
    else:
        con.execute(f"create or replace table {SCOPE_TABLE} (patient_key varchar, reason varchar)")
        line = f"full: {reason}"
        write_plan(con, True, line, None)
    forget_sources(con, raw_rows, removed)
    reasons = con.execute(f"select reason, count(*) from {SCOPE_TABLE} group by all order by 1").fetchall()
    return line, dict(reasons)
