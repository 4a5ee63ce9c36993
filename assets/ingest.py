"""Raw tables: what each source sent, as text, every row numbered; then one table per record type across sources.

Sources are the inbox's contract CSVs (patients.csv, infusions.csv,
assessments.csv) and one per mapping file in the inbox's sources/ folder, so
the asset graph shows where the data comes from.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.ingest.contract import CONTRACTS, PARSE_ERROR, ROW_NUMBER
from pipelines.ingest.csv_inbox import InboxError, contract_frame, raw_frame_from_file
from pipelines.ingest.fhir import fhir_frames
from pipelines.ingest.mapped import mapped_frames
from pipelines.ingest.mapping import load_mapping, mapping_files
from pipelines.resources import Inbox, Warehouse, replace_table
from pipelines.sql_models import SQL_DIR

CSV_SOURCE = "inbox_csv"
RECORD_TYPES = [contract.record_type for contract in CONTRACTS]


def source_table(source: str, record_type: str) -> str:
    return f"raw.source_{source}__{record_type}"


def source_names(inbox: Path) -> list[str]:
    """Return the sources of an inbox: the contract CSVs and one per mapping file (by file stem)."""
    return [CSV_SOURCE, *[path.stem for path in mapping_files(inbox)]]


def csv_frames(inbox: Path) -> dict[str, pl.DataFrame]:
    """Return the contract CSVs' raw tables; all three are required unless the inbox has mappings."""
    frames = {}
    has_mappings = bool(mapping_files(inbox))
    for contract in CONTRACTS:
        path = inbox / contract.file_name
        if path.is_file():
            frames[contract.record_type] = raw_frame_from_file(path, contract, contract.file_name)
        elif not has_mappings:
            raise InboxError(f"{contract.file_name}: not found in the inbox {inbox}")
    return frames


def registry() -> tuple[set[str], dict[str, str]]:
    """Return the instrument codes and LOINC -> code from sql/seeds/instruments.csv."""
    seeds = pl.read_csv(SQL_DIR / "seeds" / "instruments.csv", infer_schema=False)
    loinc = {row["loinc"]: row["instrument"] for row in seeds.iter_rows(named=True) if row["loinc"]}
    return set(seeds["instrument"]), loinc


def frames_of_source(folder: Path, name: str) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Return one source's raw tables per record type and, for FHIR, the skipped resources by type."""
    if name == CSV_SOURCE:
        return csv_frames(folder), {}
    path = next(p for p in mapping_files(folder) if p.stem == name)
    mapping = load_mapping(path)
    instruments, loinc = registry()
    if mapping.format == "fhir":
        frames, skipped = fhir_frames(folder, mapping, loinc)
        return frames, dict(skipped)
    return mapped_frames(folder, path.name, mapping, instruments), {}


def source_asset(name: str) -> dg.AssetsDefinition:
    """Return the asset that reads one source into raw.source_<name>__<record type> tables."""
    description = (
        "The inbox's contract CSVs (patients.csv, infusions.csv, assessments.csv), every column as text."
        if name == CSV_SOURCE else f"The export mapped by sources/{name}.yaml, as contract columns plus the originals."
    )

    @dg.asset(key=["raw", f"source_{name}"], group_name="raw", kinds={"polars", "duckdb"}, description=description)
    def read_source(inbox: Inbox, warehouse: Warehouse) -> dg.MaterializeResult:
        frames, skipped = frames_of_source(Path(inbox.path), name)
        with warehouse.connect() as con:
            for record_type in RECORD_TYPES:
                con.execute(f"drop table if exists {source_table(name, record_type)}")
            for record_type, frame in frames.items():
                replace_table(con, source_table(name, record_type), frame)
        metadata = {f"{record_type}_rows": frames[record_type].height if record_type in frames else 0
                    for record_type in RECORD_TYPES}
        if skipped:
            metadata["skipped_resources"] = dg.MetadataValue.json(skipped)
        return dg.MaterializeResult(metadata=metadata)

    read_source.__name__ = f"raw_source_{name}"
    return read_source


def record_type_asset(record_type: str, sources: list[str]) -> dg.AssetsDefinition:
    """Return the asset that unites every source's rows of one record type in raw.<record_type>."""
    contract = next(c for c in CONTRACTS if c.record_type == record_type)

    @dg.asset(
        key=["raw", record_type],
        group_name="raw",
        deps=[dg.AssetKey(["raw", f"source_{name}"]) for name in sources],
        kinds={"duckdb"},
        description=f"Every {record_type} row of every source, as sent: one row per data row of its file.",
    )
    def unite_sources(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            present = {row[0] for row in con.execute(
                "select table_name from duckdb_tables() where database_name = 'raw'").fetchall()}
            tables = [source_table(name, record_type) for name in sources
                      if source_table(name, record_type).removeprefix("raw.") in present]
            # An empty table with the contract's columns, so that a source without this record type is no error.
            empty = contract_frame(
                pl.DataFrame(schema={**{c: pl.String for c in contract.required}, ROW_NUMBER: pl.Int64,
                                     PARSE_ERROR: pl.String}), contract, "")
            replace_table(con, f"raw.empty_{record_type}", empty)
            union = " union all by name ".join(f"select * from {t}" for t in [f"raw.empty_{record_type}", *tables])
            # A view: the sources' rows are read where they are, not copied again. A table of the same
            # name, from a warehouse built before the views, gives way.
            if record_type in present:
                con.execute(f"drop table raw.{record_type}")
            con.execute(f"create or replace view raw.{record_type} as {union}")
            by_file = con.execute(
                f"select _source_file, count(*) from raw.{record_type} group by all order by 1").fetchall()
            malformed = con.execute(f"select count(*) from raw.{record_type} where {PARSE_ERROR} is not null"
                                    ).fetchone()[0]
        return dg.MaterializeResult(metadata={
            "rows_read": sum(count for _, count in by_file),
            "files": dg.MetadataValue.json({file: count for file, count in by_file}),
            "malformed_rows": malformed,
        })

    unite_sources.__name__ = f"raw_{record_type}"
    return unite_sources


def ingest_assets(inbox: Path) -> list[dg.AssetsDefinition]:
    """Return one asset per source of the inbox and one per record type uniting them."""
    sources = source_names(inbox)
    return [*[source_asset(name) for name in sources], *[record_type_asset(t, sources) for t in RECORD_TYPES]]
