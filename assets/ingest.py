"""Raw tables: what each source sent, as text, every row numbered; then one table per record type across sources.

Sources are the inbox's contract CSVs (patients.csv, infusions.csv,
assessments.csv) and one per mapping file in the inbox's sources/ folder, so
the asset graph shows where the data comes from.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from pipelines.incremental import (
    FileState,
    appended_bytes,
    changed_patient_keys,
    column_names,
    drop_relation,
    patient_key,
    read_file_states,
    relation_exists,
    state_of_file,
    write_file_states,
)
from pipelines.ingest.contract import CONTRACTS, PARSE_ERROR, ROW_NUMBER, item_values_sql
from pipelines.ingest.csv_inbox import (
    InboxError,
    contract_frame,
    raw_frame_from_bytes,
    raw_frame_from_file,
    write_raw_parquet,
)
from pipelines.ingest.fhir import fhir_frames
from pipelines.ingest.mapped import mapped_frames, matching_files
from pipelines.ingest.mapping import load_mapping, mapping_files
from pipelines.resources import Inbox, Warehouse, replace_table
from pipelines.sql_models import SQL_DIR, sql_path

CSV_SOURCE = "inbox_csv"
RECORD_TYPES = [contract.record_type for contract in CONTRACTS]


def source_table(source: str, record_type: str) -> str:
    return f"raw.source_{source}__{record_type}"


def source_names(inbox: Path) -> list[str]:
    """Return the sources of an inbox: the contract CSVs and one per mapping file (by file stem)."""
    return [CSV_SOURCE, *[path.stem for path in mapping_files(inbox)]]


def csv_frames(inbox: Path) -> dict[str, pl.DataFrame]:
    """Return the contract CSVs' raw tables read whole; all three are required unless the inbox has mappings."""
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


def source_paths(folder: Path, name: str) -> list[Path]:
    """Return the files a source reads: the contract CSVs present, or the mapping file and the files it matches."""
    if name == CSV_SOURCE:
        return [folder / c.file_name for c in CONTRACTS if (folder / c.file_name).is_file()]
    path = next(p for p in mapping_files(folder) if p.stem == name)
    mapping = load_mapping(path)
    if mapping.format == "fhir":
        data = sorted(p for p in folder.glob(mapping.files or "**/*.json") if p.is_file())
    else:
        data = sorted({p for record in mapping.records for p in matching_files(folder, record.files)})
    return [path, *data]


@dataclasses.dataclass
class SourceRead:
    """What reading one source did: files read whole, appended to or left alone; patients with changed rows."""

    files: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped_resources: dict[str, int] = dataclasses.field(default_factory=dict)


class RawStore:
    """The kept raw rows of one source, and the patients whose rows this run added, changed or removed.

    Rows are kept as Parquet parts, one folder per record type, under the
    warehouse's raw-rows folder: Polars writes them several times faster than
    DuckDB writes a table of text, and rows appended to a file become one more
    part. raw.source_<source>__<record type> is a view over the parts.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, source: str, changes_only: bool):
        self.con, self.folder, self.source, self.changes_only = con, folder / source, source, changes_only
        self.changed_table = f"raw.changed_patients__{source}"
        con.execute(f"create or replace table {self.changed_table} (patient_key varchar)")
        if not changes_only:  # a full read starts from nothing kept, whatever an older version kept
            shutil.rmtree(self.folder, ignore_errors=True)
            for record_type in RECORD_TYPES:
                drop_relation(con, source_table(source, record_type))

    def parts(self, record_type: str) -> list[Path]:
        return sorted((self.folder / record_type).glob("part-*.parquet"))

    def kept(self, record_type: str) -> str | None:
        """Return the view over a record type's kept rows, or None when none are kept."""
        return source_table(self.source, record_type) if self.parts(record_type) else None

    def incoming_part(self, record_type: str) -> Path:
        """Return where to write a record type's rows read anew, before replace() puts them in place."""
        folder = self.folder / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{record_type}.parquet"

    def replace(self, record_type: str, incoming: Path | None) -> None:
        """Keep a record type's rows read anew (a Parquet file from incoming_part, or None: no rows) in place of
        the old; note the patients whose rows differ."""
        if self.changes_only:
            kept = self.kept(record_type)
            if incoming is None:
                if kept:
                    self.note_patients(f"select {patient_key()} from {kept}")
            else:
                self.con.execute(f"create or replace temp view incoming_rows as select * from "
                                 f"read_parquet('{sql_path(incoming)}')")
                self.note_patients(changed_patient_keys(self.con, kept, "incoming_rows"))
                self.con.execute("drop view incoming_rows")
        shutil.rmtree(self.folder / record_type, ignore_errors=True)
        if incoming is not None:
            (self.folder / record_type).mkdir(parents=True)
            incoming.rename(self.folder / record_type / "part-000001.parquet")
        self.refresh_view(record_type)

    def replace_with_frame(self, record_type: str, frame: pl.DataFrame | None) -> None:
        """replace() with rows held as a frame."""
        incoming = None
        if frame is not None:
            incoming = self.incoming_part(record_type)
            frame.write_parquet(incoming, compression="snappy")
        self.replace(record_type, incoming)

    def append(self, record_type: str, frame: pl.DataFrame) -> bool:
        """Add rows appended to a file; False when their columns are not the kept rows' (read it whole)."""
        table = self.kept(record_type)
        if table is None or column_names(self.con, table) != frame.columns:
            return False
        self.write_part(record_type, frame)
        self.refresh_view(record_type)
        self.con.register("incoming_rows", frame)
        self.note_patients(f"select {patient_key()} from incoming_rows")
        self.con.unregister("incoming_rows")
        return True

    def write_part(self, record_type: str, frame: pl.DataFrame) -> None:
        folder = self.folder / record_type
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / f"part-{len(self.parts(record_type)) + 1:06d}.parquet", compression="snappy")

    def refresh_view(self, record_type: str) -> None:
        """Point the record type's view at its parts; drop it when there are none."""
        view, parts = source_table(self.source, record_type), self.parts(record_type)
        if not parts:
            self.con.execute(f"drop view if exists {view}")
            return
        files = ", ".join(f"'{sql_path(path)}'" for path in parts)
        self.con.execute(f"create or replace view {view} as select * from read_parquet([{files}], union_by_name = true)")

    def refresh_views(self) -> None:
        for record_type in RECORD_TYPES:
            self.refresh_view(record_type)

    def note_patients(self, keys_sql: str) -> None:
        self.con.execute(f"insert into {self.changed_table} select distinct * from ({keys_sql})")

    def changed_patients(self) -> int:
        return self.con.execute(f"select count(distinct patient_key) from {self.changed_table}").fetchone()[0]


def read_contract_csvs(store: RawStore, folder: Path, kept: dict[tuple[str, str], FileState]
                       ) -> tuple[SourceRead, list[FileState]]:
    """Read the contract CSVs into raw tables: only appended rows or changed files when changes_only.

    All three files are required unless the inbox has mappings.
    """
    read, states = SourceRead(), []
    has_mappings = bool(mapping_files(folder))
    for contract in CONTRACTS:
        path, file = folder / contract.file_name, contract.file_name
        previous = kept.get((CSV_SOURCE, file)) if store.changes_only else None
        if not path.is_file():
            if not has_mappings:
                raise InboxError(f"{file}: not found in the inbox {folder}")
            store.replace(contract.record_type, None)
            continue
        if previous and previous.is_unchanged(path):
            read.files[file], states = "unchanged", [*states, previous]
            continue
        appended = appended_bytes(path, previous) if previous else None
        if appended:
            header, tail, digest = appended
            frame = raw_frame_from_bytes(header + tail, contract, file, rows_before=previous.data_rows)
            if store.append(contract.record_type, frame):
                read.files[file] = f"{frame.height} rows appended"
                states.append(FileState(CSV_SOURCE, file, previous.size + len(tail), path.stat().st_mtime_ns,
                                        digest, previous.data_rows + frame.height, tail.endswith(b"\n")))
                continue
        incoming = store.incoming_part(contract.record_type)
        data_rows = write_raw_parquet(path, contract, file, incoming)
        store.replace(contract.record_type, incoming)
        read.files[file] = "read whole"
        states.append(state_of_file(CSV_SOURCE, file, path, data_rows))
    return read, states


def read_mapped_source(store: RawStore, folder: Path, kept: dict[tuple[str, str], FileState]
                       ) -> tuple[SourceRead, list[FileState]]:
    """Read a mapped source's files whole when any of them (or its mapping) is new, changed or gone."""
    paths = {str(path.relative_to(folder)): path for path in source_paths(folder, store.source)}
    previous = {file: state for (source, file), state in kept.items() if source == store.source}
    states = [FileState(store.source, file, path.stat().st_size, path.stat().st_mtime_ns)
              for file, path in paths.items()]
    if store.changes_only and previous.keys() == paths.keys() and all(
            previous[file].is_unchanged(path) for file, path in paths.items()):
        return SourceRead({file: "unchanged" for file in paths}), states
    frames, skipped = frames_of_source(folder, store.source)
    for record_type in RECORD_TYPES:
        store.replace_with_frame(record_type, frames.get(record_type))
    return SourceRead({file: "read whole" for file in paths}, skipped), states


def source_asset(name: str) -> dg.AssetsDefinition:
    """Return the asset that reads one source into raw.source_<name>__<record type> tables."""
    description = (
        "The inbox's contract CSVs (patients.csv, infusions.csv, assessments.csv), every column as text."
        if name == CSV_SOURCE else f"The export mapped by sources/{name}.yaml, as contract columns plus the originals."
    )

    @dg.asset(key=["raw", f"source_{name}"], group_name="raw", kinds={"polars", "duckdb"}, description=description)
    def read_source(inbox: Inbox, warehouse: Warehouse) -> dg.MaterializeResult:
        folder = Path(inbox.path)
        with warehouse.connect() as con:
            changes_only = warehouse.reads_changes_only
            kept = read_file_states(con) if changes_only else {}
            store = RawStore(con, warehouse.raw_rows_path, name, changes_only)
            store.refresh_views()  # the parts are where this run finds them
            reader = read_contract_csvs if name == CSV_SOURCE else read_mapped_source
            read, states = reader(store, folder, kept)
            write_file_states(con, name, states)
            metadata = {f"{record_type}_rows": con.execute(f"select count(*) from {table}").fetchone()[0]
                        if (table := store.kept(record_type)) else 0 for record_type in RECORD_TYPES}
            metadata["files"] = dg.MetadataValue.json(read.files)
            if changes_only:
                metadata["patients_with_changed_rows"] = store.changed_patients()
        if read.skipped_resources:
            metadata["skipped_resources"] = dg.MetadataValue.json(read.skipped_resources)
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
            tables = [source_table(name, record_type) for name in sources
                      if relation_exists(con, source_table(name, record_type))]
            # An empty table with the contract's columns, so that a source without this record type is no error.
            empty = contract_frame(
                pl.DataFrame(schema={**{c: pl.String for c in contract.required}, ROW_NUMBER: pl.Int64,
                                     PARSE_ERROR: pl.String}), contract, "")
            replace_table(con, f"raw.empty_{record_type}", empty)
            union = " union all by name ".join(f"select * from {t}" for t in [f"raw.empty_{record_type}", *tables])
            if contract.has_items:
                columns = [row[0] for row in con.execute(f"describe {union}").fetchall()]
                union = f"select *, {item_values_sql(columns)} from ({union})"
            # A view: the sources' rows are read where they are, not copied again.
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
