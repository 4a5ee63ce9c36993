"""Check an inbox's sources without touching the warehouse: read them and validate in an in-memory DuckDB."""

from __future__ import annotations

import graphlib
from datetime import datetime

import duckdb
import polars as pl

from pipelines.ingest.contract import CONTRACTS, RECORD_TYPES, item_values_sql
from pipelines.ingest.csv_inbox import empty_raw_frame
from pipelines.sql_models import functions_sql, seed_files, sql_models


def validation_order() -> list:
    """Return the quarantine and staging models that read only the raw rows, the seeds and each other (not the
    refresh's file bookkeeping), in dependency order."""
    models = {m.table: m for m in sql_models() if m.schema in ("quarantine", "staging")}
    available = {f"raw.{t}" for t in RECORD_TYPES}
    changed = True
    while changed:  # drop a model whose inputs a dry run lacks, then those that read it
        kept = {
            table: model
            for table, model in models.items()
            if all(i.startswith("seeds.") or i in available or i in models for i in model.inputs)
        }
        changed, models = len(kept) < len(models), kept
    graph = {table: {i for i in model.inputs if i in models} for table, model in models.items()}
    return [models[table] for table in graphlib.TopologicalSorter(graph).static_order()]


def first_problems(
    frames: dict[str, pl.DataFrame], as_of: datetime, clinic_timezone: str, limit: int = 10
) -> list[tuple]:
    """Return the first rejected rows (file, row, line, record type, reason, detail) the real validation SQL
    gives; line is the file's line (a spreadsheet's row as it shows it), None for sources without lines."""
    con = duckdb.connect()
    for schema in ("raw", "seeds", "quarantine", "staging"):
        con.execute(f"create schema {schema}")
    for path in seed_files():
        con.execute(f"create table seeds.{path.stem} as select * from read_csv(?, header = true)", [str(path)])
    con.execute("set variable as_of = ?::timestamp", [as_of])
    con.execute("set variable clinic_timezone = ?", [clinic_timezone])
    con.execute(functions_sql())
    for contract, record_type in zip(CONTRACTS, RECORD_TYPES, strict=True):
        frame = frames.get(record_type)
        if frame is None:
            frame = empty_raw_frame(contract)
        con.register("frame", frame)
        items = f", {item_values_sql(frame.columns)}" if contract.has_items else ""
        con.execute(f"create table raw.{record_type} as select *{items} from frame")
        con.unregister("frame")
    for model in validation_order():
        con.execute(f"create table {model.table} as {model.select}")
    return con.execute(
        "select source_file, row_number, line_number, record_type, reason, detail from quarantine.rejected_rows "
        f"order by source_file, row_number limit {limit}"
    ).fetchall()
