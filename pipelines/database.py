"""DuckDB plumbing every layer shares: catalog look-ups, SQL literals, writing tables, asset keys, refresh records.

Nothing here knows a clinical rule or a layer's tables: it is the bottom of the
house, imported by everything above and importing nothing of the project.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import polars as pl

if TYPE_CHECKING:
    from pipelines.outcomes.rules import OutcomeRules

REFRESHES_TABLE = "meta.refreshes"
# The published warehouse is written in the storage format of DuckDB 1.5, which analysts' duckdb command-line tool
# reads (PyPI's duckdb-cli stops at 1.5.6, and a file in a newer format is unreadable by it); the pipeline's own
# DuckDB may be newer. Given when the file is created; the file keeps it.
WAREHOUSE_CONFIG = {"storage_compatibility_version": "v1.5.0"}
REFRESHES_DESCRIPTION = "One row per published refresh: when, as of when, and with which clinical parameters."


def sql_string(value: object) -> str:
    """Return a value (text, a path) as a single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


@contextmanager
def one_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the statements of a with block as one transaction, committed together or rolled back on an error.

    Each statement on its own commits to the file: a table's twenty-five column comments took 20 ms as
    twenty-five commits and 10 ms as one, some sixty tables and thirty macro definitions a refresh.
    """
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def key_of(table: str) -> dg.AssetKey:
    """Return the asset key of a warehouse table named schema.table."""
    return dg.AssetKey(table.split("."))


def relation_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """Return 'table' or 'view' for the relation of that name (database_or_schema.name), or None if there is none."""
    database_or_schema, relation = name.split(".")
    row = con.execute(
        """select kind from (
               select database_name, schema_name, table_name as name, 'table' as kind from duckdb_tables()
               union all select database_name, schema_name, view_name, 'view' from duckdb_views())
           where (database_name = ? or schema_name = ?) and name = ?""",
        [database_or_schema, database_or_schema, relation],
    ).fetchall()
    return row[0][0] if row else None


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True when a table (not a view) of that name exists."""
    return relation_kind(con, table) == "table"


def relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when a table or a view of that name (database_or_schema.name) exists."""
    return relation_kind(con, name) is not None


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a table or view of that name, whichever it is, if it exists."""
    kind = relation_kind(con, name)
    if kind is not None:
        con.execute(f"drop {kind} {name}")


def column_names(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """Return the column names of a table, view or SELECT, in order."""
    return [row[0] for row in con.execute(f"select column_name from (describe {relation})").fetchall()]


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Write a Polars frame as a table, replacing it; return its row count."""
    con.register("frame_to_write", frame)
    try:
        con.execute(f"create or replace table {table} as select * from frame_to_write")
    finally:
        con.unregister("frame_to_write")
    return frame.height


def keys_match(table: str, keys: str, columns: Iterable[str]) -> str:
    """Return the SQL condition: a row of table has the key (columns) of a row of keys; a null part matches a null."""
    return " and ".join(f'{table}."{column}" is not distinct from {keys}."{column}"' for column in columns)


def rows_with_keys(con: duckdb.DuckDBPyConnection, table: str, keys: pl.DataFrame, columns: str) -> pl.DataFrame:
    """Return columns (SQL over the table's own columns) of the rows of a table whose key (the columns of keys) is
    among keys. A null key part matches a null."""
    con.register("wanted_keys", keys)
    try:
        matches = keys_match(table, "wanted_keys", keys.columns)
        return con.sql(f"select {columns} from {table} semi join wanted_keys on {matches}").pl()
    finally:
        con.unregister("wanted_keys")


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, keys: pl.DataFrame) -> None:
    """Replace the rows of a table whose key (the columns of keys) is among keys with the rows of frame, which
    holds those keys' rows only; a key without rows in frame loses its rows. A null key part matches a null."""
    matches = keys_match(table, "replaced_keys", keys.columns)
    con.register("replaced_keys", keys)
    con.register("replacing_rows", frame)
    try:
        con.execute(f"delete from {table} using replaced_keys where {matches}")
        con.execute(f"insert into {table} by name select * from replacing_rows")
    finally:
        con.unregister("replaced_keys")
        con.unregister("replacing_rows")


def set_rule_variables(con: duckdb.DuckDBPyConnection, rules: OutcomeRules) -> None:
    """Make every clinical parameter readable in SQL as getvariable('<name>')."""
    for name, value in rules.model_dump().items():
        con.execute(f"set variable {name} = ?", [value])


def record_refresh(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: datetime,
    clinic_timezone: str,
    rules: OutcomeRules,
    generation: str,
    scope: str | None,
    patients_recomputed: int | None,
    code_fingerprint: str,
) -> None:
    """Append one publication to meta.refreshes, the warehouse's own history of refreshes."""
    con.execute("create schema if not exists meta")
    con.execute(
        f"""
        create table if not exists {REFRESHES_TABLE} (
            refreshed_at timestamp, as_of timestamp, clinic_timezone varchar, rules json, pipeline_version varchar
        )
        """
    )
    # Columns added after the first release: a warehouse published before them gains them empty.
    for column in (
        "refresh_scope varchar",
        "patients_recomputed bigint",
        "generation varchar",
        "code_fingerprint varchar",
    ):
        con.execute(f"alter table {REFRESHES_TABLE} add column if not exists {column}")
    con.execute(
        f"""insert into {REFRESHES_TABLE} by name select ? as refreshed_at, ? as as_of, ? as clinic_timezone,
           ? as rules, ? as pipeline_version, ? as refresh_scope, ? as patients_recomputed, ? as generation,
           ? as code_fingerprint""",
        [
            datetime.now(ZoneInfo("UTC")).replace(tzinfo=None),
            as_of,
            clinic_timezone,
            json.dumps(rules.model_dump()),
            version("infusion-outcomes"),
            scope,
            patients_recomputed,
            generation,
            code_fingerprint,
        ],
    )


def last_refresh(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """Return the latest row of meta.refreshes as a dict, or None when there is none."""
    if not table_exists(con, REFRESHES_TABLE):
        return None
    cursor = con.execute(f"select * from {REFRESHES_TABLE} order by refreshed_at desc limit 1")
    rows = cursor.fetchall()
    return dict(zip([d[0] for d in cursor.description], rows[0], strict=True)) if rows else None
