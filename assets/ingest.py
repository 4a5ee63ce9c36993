"""Raw tables: what each source sent, as text, every row numbered; then one table per record type across sources.

Sources are the inbox's contract CSVs (patients.csv, infusions.csv,
assessments.csv) and one per mapping file in the inbox's sources/ folder, so
the asset graph shows where the data comes from. Reading and keeping the rows
is pipelines.incremental.raw_store's; these assets only wire it to Dagster.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.database import relation_exists, replace_table
from pipelines.incremental.file_states import read_file_states, write_file_states
from pipelines.incremental.raw_store import RawStore, read_source, source_table
from pipelines.ingest.contract import CONTRACTS, PARSE_ERROR, RECORD_TYPES, item_values_sql
from pipelines.ingest.csv_inbox import empty_raw_frame
from pipelines.ingest.sources import CSV_SOURCE, source_names
from pipelines.resources import Inbox, Warehouse


def source_asset(name: str) -> dg.AssetsDefinition:
    """Return the asset that reads one source into raw.source_<name>__<record type> tables."""
    description = (
        "The inbox's contract CSVs (patients.csv, infusions.csv, assessments.csv), every column as text."
        if name == CSV_SOURCE
        else f"The export mapped by sources/{name}.yaml, as contract columns plus the originals."
    )

    @dg.asset(key=["raw", f"source_{name}"], group_name="raw", kinds={"polars", "duckdb"}, description=description)
    def read_one_source(inbox: Inbox, warehouse: Warehouse) -> dg.MaterializeResult:
        folder = Path(inbox.path)
        with warehouse.connect() as con:
            changes_only = warehouse.reads_changes_only
            kept = read_file_states(con) if changes_only else {}
            store = RawStore(con, warehouse.raw_rows_path, name, changes_only)
            store.refresh_views()  # the parts are where this run finds them
            read, states = read_source(store, folder, kept)
            write_file_states(con, name, states)
            metadata = {
                f"{record_type}_rows": con.execute(f"select count(*) from {table}").fetchone()[0]
                if (table := store.kept(record_type))
                else 0
                for record_type in RECORD_TYPES
            }
            metadata["files"] = dg.MetadataValue.json(read.files)
            if changes_only:
                metadata["patients_with_changed_rows"] = store.changed_patients()
        if read.skipped_resources:
            metadata["skipped_resources"] = dg.MetadataValue.json(read.skipped_resources)
        return dg.MaterializeResult(metadata=metadata)

    read_one_source.__name__ = f"raw_source_{name}"
    return read_one_source


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
            tables = [
                source_table(name, record_type)
                for name in sources
                if relation_exists(con, source_table(name, record_type))
            ]
            # An empty table with the contract's columns, so that a source without this record type is no error.
            replace_table(con, f"raw.empty_{record_type}", empty_raw_frame(contract))
            union = " union all by name ".join(f"select * from {t}" for t in [f"raw.empty_{record_type}", *tables])
            if contract.has_items:
                columns = [row[0] for row in con.execute(f"describe {union}").fetchall()]
                union = f"select *, {item_values_sql(columns)} from ({union})"
            # A view: the sources' rows are read where they are, not copied again.
            con.execute(f"create or replace view raw.{record_type} as {union}")
            by_file = con.execute(
                f"select _source_file, count(*) from raw.{record_type} group by all order by 1"
            ).fetchall()
            malformed = con.execute(
                f"select count(*) from raw.{record_type} where {PARSE_ERROR} is not null"
            ).fetchone()[0]
        return dg.MaterializeResult(
            metadata={
                "rows_read": sum(count for _, count in by_file),
                "files": dg.MetadataValue.json(dict(by_file)),
                "malformed_rows": malformed,
            }
        )

    unite_sources.__name__ = f"raw_{record_type}"
    return unite_sources


def ingest_assets(inbox: Path) -> list[dg.AssetsDefinition]:
    """Return one asset per source of the inbox and one per record type uniting them."""
    sources = source_names(inbox)
    return [*[source_asset(name) for name in sources], *[record_type_asset(t, sources) for t in RECORD_TYPES]]
