"""The patients a refresh recomputes, in SQL: which rows are in scope, and how a per-patient table is merged."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from pipelines.database import column_names, table_exists
from pipelines.sql_models import SqlModel, sql_models, table_references

SCOPE_TABLE = "raw.refresh_scope"
# Tables of reference rows that per-patient tables read whole: a change of their rows recomputes every patient
# (pipelines.incremental.policy), so a per-patient table may read them.
REFERENCE_TABLES = ("quarantine.clinics_validated",)
PLAN_TABLE = "raw.refresh_plan"


def patient_key(column: str = "patient_id") -> str:
    """Return the SQL key that groups rows by patient: the trimmed id, '' for rows without one.

    Validation cleans patient_id with blank_to_null, so the key of a raw row and
    of every table derived from it agree.
    """
    return f"coalesce(nullif(trim({column}), ''), '')"


def in_scope(column: str = "patient_id", is_raw: bool = False) -> str:
    """Return the SQL condition: the row belongs to a patient this refresh recomputes.

    Rows past validation carry the id already trimmed (null when blank), so their key needs no trim of
    millions of strings: only raw rows, as sent, do.
    """
    key = patient_key(column) if is_raw else f"coalesce({column}, '')"
    return f"{key} in (select patient_key from {SCOPE_TABLE})"


def with_tables_renamed(select: str, names: dict[str, str]) -> str:
    """Return the SELECT's text with each schema.table of names replaced by its new name, and nothing else changed.

    The parse finds the references (never a column, string or comment that looks like one); the text is
    edited at their positions, so the SQL that runs is the file as written.
    """
    spans = []
    for table in table_references(select):
        name = f"{table.db}.{table.name}"
        if name in names:
            spans.append((table.args["db"].meta["start"], table.this.meta["end"] + 1, names[name]))
    for start, end, replacement in sorted(spans, reverse=True):
        select = select[:start] + replacement + select[end:]
    return select


def scoped_select(con: duckdb.DuckDBPyConnection, select: str, inputs: Iterable[str]) -> str:
    """Return the SELECT reading only the recomputed patients' rows of each input other than the seeds and the
    reference tables (those without a patient_id, such as the clinics).

    Each input table is replaced by a temporary view of its rows in scope (scoped_rows), so the model's SQL
    runs unchanged on the patients it recomputes.
    """
    views = {}
    for table in inputs:
        schema, name = table.split(".")
        if schema == "seeds" or "patient_id" not in column_names(con, table):
            continue
        views[table] = f"scoped__{schema}__{name}"
        con.execute(f"create or replace temp view {views[table]} as select * from {scoped_rows(con, table)}")
    return with_tables_renamed(select, views)


# The database, attached in memory for one run (pipelines.resources.Warehouse), that holds the rows each merge
# of this run wrote: the recomputed patients' rows of each per-patient table, as they now stand.
RECOMPUTED_DATABASE = "recomputed"


def attach_recomputed_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Attach RECOMPUTED_DATABASE, empty, in memory: it goes with the connection, so no run reads another's rows.
    Past the memory limit DuckDB spills it to disk."""
    con.execute(f"attach ':memory:' as {RECOMPUTED_DATABASE}")


def recomputed_rows_table(table: str) -> str:
    """Return the table of RECOMPUTED_DATABASE that holds the recomputed patients' rows of a per-patient table
    (or of a raw table, as read)."""
    return f"{RECOMPUTED_DATABASE}.{table.replace('.', '__')}"


def scoped_rows(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Return a relation (a table name or a parenthesised SELECT) of the recomputed patients' rows of a table or
    view, as they stand now.

    A table merged earlier in this run is read from the rows its merge wrote (a few thousand rows) rather than
    scanned: the recomputed patients are spread over every row group of a table of millions of rows, so each
    scan for them read the table whole (at a million patients 0.05 to 0.4 s a read, over a dozen reads). A
    per-patient view is its SELECT over its own inputs' scoped rows. A raw table's rows in scope are read out
    once and kept with the merged rows; any other relation is scanned for them.
    """
    recomputed = recomputed_rows_table(table)
    if table_exists(con, recomputed):
        return recomputed
    view = per_patient_views().get(table)
    if view is not None:
        return f"({scoped_select(con, view.select, view.inputs)}\n)"  # a line break ends the file's last comment
    if table.startswith("raw."):
        # The raw rows are read before any step reads them in scope and do not change after. Their rows in scope
        # are taken out once, every column (the validation reads them all), and kept for the later readers (the
        # rejected rows' records as sent): at a million patients each scan of the raw assessments for them read
        # 16.7 million rows whole.
        con.execute(f"create table {recomputed} as select * from {table} where {in_scope(is_raw=True)}")
        return recomputed
    return f"(select * from {table} where {in_scope()})"


def per_patient_views() -> dict[str, SqlModel]:
    """Return the SQL models materialized as per-patient views, by table name."""
    return {model.table: model for model in sql_models() if model.is_view and model.is_per_patient}


# Per-patient tables whose replaced rows a merge keeps (replaced_rows_table), for the statistics to take the
# replaced series' counts away from their cells (assets/statistics.py).
KEEPS_REPLACED_ROWS = ("marts.series_outcomes",)


def replaced_rows_table(table: str) -> str:
    """Return the raw-store table that holds the rows the last merge of a table replaced (never published)."""
    return f"raw.replaced__{table.replace('.', '__')}"


def merge_by_patient(con: duckdb.DuckDBPyConnection, table: str, rows: str) -> int:
    """Replace the recomputed patients' rows of a table with the rows in scope a query returns; return how many.

    The rows written stay in recomputed_rows_table(table) for the rest of the run, where later steps read the
    recomputed patients' rows (scoped_rows). The rows replaced in a table of KEEPS_REPLACED_ROWS are kept in
    replaced_rows_table(table).
    """
    recomputed = recomputed_rows_table(table)
    con.execute(f"create or replace table {recomputed} as {rows}")
    # Only rows of patients in scope replace the table's: a table that also holds rows of no patient read whole
    # from a reference table (the clinics' rejected rows) returns them again, and they are kept as they are
    # unless rows without a patient are in scope. A per-patient model's inputs hold no other patient's rows.
    con.execute(f"delete from {recomputed} where not ({in_scope()})")
    if table in KEEPS_REPLACED_ROWS:
        con.execute(f"create or replace table {replaced_rows_table(table)} as select * from {table} where {in_scope()}")
    con.execute(f"delete from {table} where {in_scope()}")
    con.execute(f"insert into {table} by name select * from {recomputed}")
    return con.execute(f"select count(*) from {recomputed}").fetchall()[0][0]


def scope_is_every_patient(con: duckdb.DuckDBPyConnection) -> bool:
    """True when this refresh recomputes every patient (a full refresh); False when it merges a few."""
    if not table_exists(con, PLAN_TABLE):
        return True
    return con.execute(f"select every_patient from {PLAN_TABLE}").fetchall()[0][0]


def write_plan(con: duckdb.DuckDBPyConnection, every_patient: bool, reason: str, patients: int | None) -> None:
    """Record this refresh's plan: every patient or a few, why, and how many."""
    con.execute(f"create or replace table {PLAN_TABLE} (every_patient boolean, reason varchar, patients bigint)")
    con.execute(f"insert into {PLAN_TABLE} values (?, ?, ?)", [every_patient, reason, patients])


def plan_of(con: duckdb.DuckDBPyConnection) -> tuple[str | None, int | None]:
    """Return this refresh's plan as (reason, patients recomputed), or (None, None) when it has none."""
    if not table_exists(con, PLAN_TABLE):
        return None, None
    return con.execute(f"select reason, patients from {PLAN_TABLE}").fetchall()[0]
