"""Read-only access to the published warehouse for analysts: queries, formats and exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from tabulate import tabulate

from pipelines.database import sql_string

EXPORT_SCHEMAS = ("marts",)


class QueryRefused(Exception):
    """A statement that would change something, refused by the read-only connection."""


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Return a connection that can only read the warehouse: no writes, no files, no configuration changes."""
    if not Path(warehouse).is_file():
        raise FileNotFoundError(f"no warehouse at {warehouse}; run `make demo` or `infusion-outcomes refresh` first")
    return duckdb.connect(
        str(warehouse),
        read_only=True,
        config={"enable_external_access": False, "lock_configuration": True},
    )


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Return the columns and rows of the last statement; raise QueryRefused for anything that would write."""
    try:
        cursor = con.execute(sql)
    except duckdb.InvalidInputException as error:
        message = str(error)
        if "read-only mode" in message:
            statement = message.split('statement of type "')[1].split('"')[0] if 'of type "' in message else "it"
            raise QueryRefused(f"refused: the warehouse is read-only and {statement} would change it") from None
        if "configuration has been locked" in message:
            raise QueryRefused("refused: settings cannot be changed in a read-only session") from None
        raise
    except duckdb.PermissionException:
        raise QueryRefused("refused: a read-only session cannot read or write files outside the warehouse") from None
    if cursor.description is None:
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()


def formatted(columns: list[str], rows: list[tuple], output_format: str) -> str:
    """Return rows as an aligned table, CSV, JSON records or a Markdown table."""
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in rows])
        return buffer.getvalue()
    if output_format == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2, default=_text) + "\n"
    table_format = "github" if output_format == "markdown" else "simple"
    text_rows = [[_text(v) if isinstance(v, (datetime, list, dict)) else v for v in row] for row in rows]
    return tabulate(text_rows, headers=columns, tablefmt=table_format, missingval="NULL", disable_numparse=True) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def export_tables(warehouse: Path, out: Path, file_format: str) -> dict:
    """Write each mart as one Parquet or CSV file plus manifest.json; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    # An operator command: it writes files, so it does not use the locked-down analyst connection.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schemas = ", ".join(f"'{s}'" for s in EXPORT_SCHEMAS)
        tables = con.execute(
            f"select schema_name, table_name from duckdb_tables() where schema_name in ({schemas}) order by 1, 2"
        ).fetchall()
        refreshed = con.execute("select max(refreshed_at), max(as_of) from meta.refreshes").fetchone()
        entries = []
        for schema, table in tables:
            target = out / f"{table}.{file_format}"
            options = "format parquet, compression zstd" if file_format == "parquet" else "format csv, header true"
            con.execute(f"copy {schema}.{table} to {sql_string(target)} ({options})")
            row_count = con.execute(f"select count(*) from {schema}.{table}").fetchone()[0]
            entries.append({"table": f"{schema}.{table}", "file": target.name, "row_count": row_count})
    manifest = {
        "refreshed_at": refreshed[0].isoformat() if refreshed[0] else None,
        "as_of": refreshed[1].isoformat() if refreshed[1] else None,
        "format": file_format,
        "tables": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
