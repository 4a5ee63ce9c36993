"""Incremental refresh: what changed in the inbox since the last publication, and which patients to recompute.

Every table the pipeline derives per patient (validation, staging, the outcome
engine, the per-series marts) depends only on that patient's rows, the seeds,
the clinical parameters, the clinic timezone and the run's as-of time. So a
refresh after a published one recomputes only the patients with new, changed
or removed inbox rows (plus those whose rows the as-of time judges differently
now), merges them into a copy of the published warehouse, and rebuilds the
whole-table aggregates from the merged tables. The result equals a full
refresh; tests/test_incremental.py holds it to that.

The raw tables persist between runs beside the warehouse (<warehouse>.raw)
with the state of every inbox file they were read from, stamped with the
generation of the warehouse published from them. Any doubt (no published
warehouse, a stamp that does not match because a run failed, other code)
means a full refresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
# What computes the raw and per-patient tables: when any of it changes, the kept state is not reusable.
CODE_FOLDERS = ("sql", "pipelines/ingest", "pipelines/outcomes", "assets")
BUILDING = "building"
SCOPE_TABLE = "raw.refresh_scope"
PLAN_TABLE = "raw.refresh_plan"
FILE_STATES_TABLE = "raw.file_states"
HASH_BLOCK = 1 << 24


def code_fingerprint() -> str:
    """Return a digest of the SQL, the ingest and outcome code, and the DuckDB and Polars versions."""
    digest = hashlib.sha256(f"duckdb {version('duckdb')} polars {version('polars')}".encode())
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".sql", ".py", ".csv", ".yaml"):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


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


@dataclasses.dataclass(frozen=True)
class FileState:
    """What a refresh knew of one inbox file: enough to tell unchanged, appended to, or otherwise changed."""

    source: str
    file: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    data_rows: int | None = None
    ends_with_newline: bool | None = None

    def is_unchanged(self, path: Path) -> bool:
        """The quick check rsync and make use: same size, same modification time."""
        stat = path.stat()
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


def state_of_file(source: str, file: str, path: Path, data_rows: int) -> FileState:
    """Return the state of a file just read whole: size, time, SHA-256 (read in blocks) and its last byte."""
    stat, digest = path.stat(), hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
            last = block
    ends_with_newline = stat.st_size > 0 and last.endswith(b"\n")
    return FileState(source, file, stat.st_size, stat.st_mtime_ns, digest.hexdigest(), data_rows, ends_with_newline)


def appended_bytes(path: Path, previous: FileState) -> tuple[bytes, bytes, str] | None:
    """Return (header line, bytes after the previous end, digest of the whole file) when rows were only appended.

    Appended means: the file grew, the previous file ended with a line break,
    and its first previous.size bytes are exactly the previous file (same
    SHA-256). Anything else returns None and the file is read whole.
    """
    if previous.sha256 is None or not previous.ends_with_newline or path.stat().st_size <= previous.size:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header = handle.readline()
        handle.seek(0)
        remaining = previous.size
        while remaining:
            block = handle.read(min(HASH_BLOCK, remaining))
            if not block:
                return None
            digest.update(block)
            remaining -= len(block)
        if digest.hexdigest() != previous.sha256:
            return None
        tail = handle.read()
    digest.update(tail)
    if header.startswith((b"\xff\xfe", b"\xfe\xff")) or not header.endswith(b"\n"):
        return None  # UTF-16 or a one-line file: read whole
    return header, tail, digest.hexdigest()


def read_file_states(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], FileState]:
    """Return the kept state of every inbox file, by (source, file)."""
    if not table_exists(con, FILE_STATES_TABLE):
        return {}
    rows = con.execute(f"select * from {FILE_STATES_TABLE}").fetchall()
    return {(row[0], row[1]): FileState(*row) for row in rows}


def write_file_states(con: duckdb.DuckDBPyConnection, source: str, states: Iterable[FileState]) -> None:
    """Replace the kept state of one source's files."""
    con.execute(
        f"""create table if not exists {FILE_STATES_TABLE} (
            source varchar, file varchar, size bigint, mtime_ns bigint, sha256 varchar, data_rows bigint,
            ends_with_newline boolean)"""
    )
    con.execute(f"delete from {FILE_STATES_TABLE} where source = ?", [source])
    for state in states:
        con.execute(f"insert into {FILE_STATES_TABLE} values (?, ?, ?, ?, ?, ?, ?)", list(dataclasses.astuple(state)))


def relation_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """Return 'table' or 'view' for the relation of that name (database_or_schema.name), or None if there is none."""
    database_or_schema, relation = name.split(".")
    row = con.execute(
        """select kind from (
               select database_name, schema_name, table_name as name, 'table' as kind from duckdb_tables()
               union all select database_name, schema_name, view_name, 'view' from duckdb_views())
           where (database_name = ? or schema_name = ?) and name = ?""",
        [database_or_schema, database_or_schema, relation]).fetchone()
    return None if row is None else row[0]


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return relation_kind(con, table) == "table"


def relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when a table or a view of that name (database_or_schema.name) exists."""
    return relation_kind(con, name) is not None


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a table or view of that name, whichever it is, if it exists."""
    kind = relation_kind(con, name)
    if kind is not None:
        con.execute(f"drop {kind} {name}")


def column_names(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"select column_name from (describe {table})").fetchall()]


def changed_patient_keys(con: duckdb.DuckDBPyConnection, kept: str | None, incoming: str) -> str:
    """Return SQL selecting the patient keys of rows that differ between a kept raw table and its new rows.

    Rows are compared whole (row number included), so a patient whose row moved,
    changed or disappeared is recomputed. When the columns differ, every patient
    of either side is.
    """
    if kept is None:
        return f"select distinct {patient_key()} as patient_key from {incoming}"
    if column_names(con, kept) != column_names(con, incoming):
        return (f"select {patient_key()} as patient_key from {kept} "
                f"union select {patient_key()} from {incoming}")
    return f"""
        select distinct {patient_key()} as patient_key from (
            (select * from {incoming} except all select * from {kept})
            union all
            (select * from {kept} except all select * from {incoming})
        )
    """


def scoped_select(con: duckdb.DuckDBPyConnection, select: str, inputs: Iterable[str]) -> str:
    """Return the SELECT reading only the recomputed patients' rows of each input other than the seeds.

    Each input table is replaced by a temporary view that keeps the rows in
    scope, so the model's SQL runs unchanged on the patients it recomputes.
    """
    for table in inputs:
        schema, name = table.split(".")
        if schema == "seeds":
            continue
        view = f"scoped__{schema}__{name}"
        con.execute(f"create or replace temp view {view} as select * from {table} "
                    f"where {in_scope(is_raw=schema == 'raw')}")
        select = re.sub(rf"\b{re.escape(schema)}\.{re.escape(name)}\b", view, select)
    return select


def merge_by_patient(con: duckdb.DuckDBPyConnection, table: str, rows: str) -> int:
    """Replace the recomputed patients' rows of a table with the rows a query returns; return how many."""
    con.execute(f"create or replace temp table merged_rows as {rows}")
    con.execute(f"delete from {table} where {in_scope()}")
    con.execute(f"insert into {table} by name select * from merged_rows")
    count = con.execute("select count(*) from merged_rows").fetchone()[0]
    con.execute("drop table merged_rows")
    return count


def scope_is_every_patient(con: duckdb.DuckDBPyConnection) -> bool:
    """True when this refresh recomputes every patient (a full refresh); False when it merges a few."""
    if not table_exists(con, PLAN_TABLE):
        return True
    return con.execute(f"select every_patient from {PLAN_TABLE}").fetchone()[0]
