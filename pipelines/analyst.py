"""Read-only access to the published warehouse for analysts: queries, formats and exports."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from tabulate import tabulate

from pipelines.database import sql_string

EXPORT_SCHEMAS = ("marts",)
# Marts that name patients for clinicians to act on: left out of exports for BI tools unless asked for.
IDENTIFIABLE_MARTS = ("marts.suicidality_worklist", "marts.early_non_improvement_worklist")
# What one ad-hoc query may take unless the analyst says otherwise: enough for any question a table answers,
# not enough for a query that runs away with the machine (a cross join, a count over range(1e11)).
DEFAULT_MAX_ROWS = 100_000
DEFAULT_TIMEOUT_SECONDS = 300.0
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class QueryRefused(Exception):
    """A statement that would change something, or that went past a limit: one line says which."""


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Return a connection that can only read the warehouse: no writes, no files, no extensions, no settings."""
    if not Path(warehouse).is_file():
        raise FileNotFoundError(f"no warehouse at {warehouse}; run `make demo` or `infusion-outcomes refresh` first")
    return duckdb.connect(
        str(warehouse),
        read_only=True,
        config={
            "enable_external_access": False,
            "allow_community_extensions": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        },
    )


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> tuple[list[str], list[tuple]]:
    """Return the columns and rows of the last statement.

    Raises QueryRefused for anything that would write, for a query still
    running after timeout_seconds (it is interrupted) and for one that
    returns more than max_rows rows (no part of it is returned: a cut result
    would pass for a whole one).
    """
    timer = threading.Timer(timeout_seconds, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        rows = cursor.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise QueryRefused(
            f"stopped: the query ran for longer than {timeout_seconds:g} s (--timeout); narrow it or allow more time"
        ) from None
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
    finally:
        timer.cancel()
    if len(rows) > max_rows:
        raise QueryRefused(
            f"stopped: the query returns more than {max_rows:,} rows (--max-rows); aggregate or add a limit, "
            "raise --max-rows, or use `infusion-outcomes export` for whole tables"
        )
    return [d[0] for d in cursor.description], rows


def spreadsheet_safe(value: str) -> str:
    """Return a text cell as a spreadsheet shows text: a quote before a formula's first character."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def formatted(columns: list[str], rows: list[tuple], output_format: str) -> str:
    """Return rows as an aligned table, CSV, JSON records or a Markdown table."""
    if output_format == "csv":
        buffer = io.StringIO()
        plain = csv.writer(buffer, lineterminator="\n")
        # With LF line ends the csv module leaves a lone CR in a value unquoted, which splits the row for
        # every reader: such a row is written with every value quoted.
        quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        # Text is escaped against formulas; numbers (a negative one included) stay numbers.
        for cells in [[spreadsheet_safe(c) for c in columns], *[[_csv_cell(v) for v in row] for row in rows]]:
            (quoted if any("\r" in cell for cell in cells) else plain).writerow(cells)
        return buffer.getvalue()
    if output_format == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2, default=_text) + "\n"
    table_format = "github" if output_format == "markdown" else "simple"
    text_rows = [[_text(v) if isinstance(v, (datetime, list, dict)) else v for v in row] for row in rows]
    return tabulate(text_rows, headers=columns, tablefmt=table_format, missingval="NULL", disable_numparse=True) + "\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return spreadsheet_safe(value) if isinstance(value, str) else _text(value)


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def spreadsheet_safe_select(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """Return a SELECT of a table with its text columns escaped as spreadsheet_safe does, the rest as they are."""
    columns = con.execute(
        "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ? "
        "order by column_index",
        [schema, table],
    ).fetchall()
    starts = ", ".join(sql_string(start) for start in FORMULA_STARTS)
    selected = []
    for name, data_type in columns:
        column = '"' + name.replace('"', '""') + '"'
        if data_type == "VARCHAR":
            selected.append(f"case when left({column}, 1) in ({starts}) then '''' || {column} else {column} end")
        else:
            selected.append(column)
        selected[-1] += f" as {column}"
    return f"select {', '.join(selected)} from {schema}.{table}"


def export_tables(warehouse: Path, out: Path, file_format: str, include_identifiable: bool = False) -> dict:
    """Write each mart as one Parquet or CSV file plus manifest.json; return the manifest.

    CSV is for people (Excel, BI tools): its text cells are escaped against
    formulas. Parquet keeps every value as it is. The clinicians' identifiable
    worklists are left out unless include_identifiable; the manifest lists
    what was left out.
    """
    out.mkdir(parents=True, exist_ok=True)
    # An operator command: it writes files, so it does not use the locked-down analyst connection.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schemas = ", ".join(f"'{s}'" for s in EXPORT_SCHEMAS)
        tables = con.execute(
            f"select schema_name, table_name from duckdb_tables() where schema_name in ({schemas}) order by 1, 2"
        ).fetchall()
        refreshed = con.execute("select max(refreshed_at), max(as_of) from meta.refreshes").fetchall()[0]
        entries, left_out = [], []
        for schema, table in tables:
            if f"{schema}.{table}" in IDENTIFIABLE_MARTS and not include_identifiable:
                left_out.append(f"{schema}.{table}")
                continue
            target = out / f"{table}.{file_format}"
            if file_format == "parquet":
                con.execute(f"copy {schema}.{table} to {sql_string(target)} (format parquet, compression zstd)")
            else:
                select = spreadsheet_safe_select(con, schema, table)
                con.execute(f"copy ({select}) to {sql_string(target)} (format csv, header true)")
            row_count = con.execute(f"select count(*) from {schema}.{table}").fetchall()[0][0]
            entries.append({"table": f"{schema}.{table}", "file": target.name, "row_count": row_count})
    manifest = {
        "refreshed_at": refreshed[0].isoformat() if refreshed[0] else None,
        "as_of": refreshed[1].isoformat() if refreshed[1] else None,
        "format": file_format,
        "tables": entries,
        "left_out_identifiable": left_out,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
