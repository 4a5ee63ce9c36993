"""Raw tables: what each source sent, as text, every row numbered; then one table per record type across sources.

Sources are the inbox's contract CSVs, one per mapping file in the inbox's
sources/ folder, and FHIR files no mapping reads, found when a run starts.
Reading and keeping the rows is pipelines.incremental.raw_store's; these assets
only wire it to Dagster.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.database import relation_exists, replace_table
from pipelines.incremental.file_states import read_file_states, write_file_states
from pipelines.incremental.raw_store import RawStore, read_source, source_table
from pipelines.ingest.contract import CONTRACTS, PARSE_ERROR, RECORD_TYPES, item_values_sql
from pipelines.ingest.csv_inbox import empty_raw_frame
from pipelines.ingest.sources import source_names
from pipelines.resources import Inbox, Warehouse

SOURCES_TABLE = "raw.source_names"
# Run before any step ready beside them (the seeds), as none of them needs the warehouse: an incremental
# refresh makes its working copy of the published warehouse meanwhile (pipelines.resources.WorkingCopy).
READ_FIRST = {"dagster/priority": "1"}


@dg.asset(
    key=["raw", "sources"],
    group_name="raw",
    kinds={"polars", "duckdb"},
    op_tags=READ_FIRST,
    description=(
        "Every source of the inbox, found when the run starts (a new mapping needs no reload): the contract CSVs "
        "(clinics.csv, patients.csv, infusions.csv, assessments.csv), one source per mapping file in sources/, and "
        "FHIR files no mapping reads; each kept as raw.source_<name>__<record type>, every column as text."
    ),
)
def raw_sources(inbox: Inbox, warehouse: Warehouse) -> dg.MaterializeResult:
    folder = Path(inbox.path)
    names = source_names(folder)
    metadata: dict = {}
    skipped: dict = {}
    with warehouse.connect_to_raw_store() as con:
        changes_only = warehouse.reads_changes_only
        kept = read_file_states(con) if changes_only else {}
        for name in names:
            store = RawStore(con, warehouse.raw_rows_path, name, changes_only)
            store.refresh_views()  # the parts are where this run finds them
            read, states = read_source(store, folder, kept)
            write_file_states(con, name, states)
            rows = {
                record_type: con.execute(f"select count(*) from {table}").fetchall()[0][0]
                for record_type in RECORD_TYPES
                if (table := store.kept(record_type))
            }
            metadata[name] = dg.MetadataValue.json(
                {"files": read.files, "rows": rows}
                | ({"patients_with_changed_rows": store.changed_patients()} if changes_only else {})
            )
            if read.skipped_resources:
                skipped[name] = read.skipped_resources
        # The sources this run read, for the steps after it (the graph does not know them in advance).
        con.execute(f"create or replace table {SOURCES_TABLE} as select unnest(?::varchar[]) as source", [names])
    if skipped:
        metadata["skipped_resources"] = dg.MetadataValue.json(skipped)
    return dg.MaterializeResult(metadata={"sources": ", ".join(names), **metadata})


def sources_read(con) -> list[str]:
    """Return the sources the raw/sources step of this run read."""
    return [row[0] for row in con.execute(f"select source from {SOURCES_TABLE} order by 1").fetchall()]


def record_type_asset(record_type: str) -> dg.AssetsDefinition:
    """Return the asset that unites every source's rows of one record type in raw.<record_type>."""
    contract = next(c for c in CONTRACTS if c.record_type == record_type)

    @dg.asset(
        key=["raw", record_type],
        group_name="raw",
        deps=[raw_sources.key],
        kinds={"duckdb"},
        op_tags=READ_FIRST,
        description=f"Every {record_type} row of every source, as sent: one row per data row of its file.",
    )
    def unite_sources(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect_to_raw_store() as con:
            tables = [
                source_table(name, record_type)
                for name in sources_read(con)
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
            ).fetchall()[0][0]
        return dg.MaterializeResult(
            metadata={
                "rows_read": sum(count for _, count in by_file),
                "files": dg.MetadataValue.json(dict(by_file)),
                "malformed_rows": malformed,
            }
        )

    unite_sources.__name__ = f"raw_{record_type}"
    return unite_sources


# The raw tables: one step reads every source, one asset per record type unites them. None depends on which
# sources the inbox holds, so a new mapping is read by the next run without reloading the code.
ingest_assets = [raw_sources, *[record_type_asset(t) for t in RECORD_TYPES]]
