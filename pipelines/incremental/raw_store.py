"""The raw rows kept between refreshes, one store per source: read whole, appended to, or left as they are."""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import polars as pl

from pipelines.database import column_names, drop_relation, sql_string
from pipelines.incremental.file_states import (
    Comparison,
    FileState,
    appended_bytes,
    compared_with_previous,
    digest_of_file,
    forget_source_files,
    sources_kept,
    state_of_file,
)
from pipelines.incremental.scope import patient_key
from pipelines.ingest.contract import CONTRACT_BY_TYPE, CONTRACTS, RECORD_TYPES
from pipelines.ingest.csv_inbox import InboxError, raw_csv_from_bytes, write_raw_parquet
from pipelines.ingest.sources import CSV_SOURCE, frames_of_source, has_other_sources, source_paths


def source_table(source: str, record_type: str) -> str:
    """Return the view over one source's kept rows of one record type."""
    return f"raw.source_{source}__{record_type}"


def changed_patients_table(source: str) -> str:
    """Return the table of the patients whose rows of one source this run added, changed or removed."""
    return f"raw.changed_patients__{source}"


def changed_reference_table(source: str) -> str:
    """Return the table of the reference record types (clinics) whose rows of one source this run changed."""
    return f"raw.changed_reference__{source}"


def changed_patient_keys(con: duckdb.DuckDBPyConnection, kept: str | None, incoming: str) -> str:
    """Return SQL selecting the patient keys of rows that differ between a kept raw table and its new rows.

    Rows are compared whole (row number included), so a patient whose row moved,
    changed or disappeared is recomputed. When the columns differ, every patient
    of either side is.
    """
    if kept is None:
        return f"select distinct {patient_key()} as patient_key from {incoming}"
    if column_names(con, kept) != column_names(con, incoming):
        return f"select {patient_key()} as patient_key from {kept} union select {patient_key()} from {incoming}"
    # The readers number each row of a file once, so a file and row number name one row on either side: the rows
    # are paired by them and compared whole, each side's patient taken where the two differ or one is missing. A
    # clinic's export written again with a few rows changed (a hundred thousand patients' assessments) took 3.6 s
    # to compare as two EXCEPT ALLs, 0.6 s so.
    return f"""
        select distinct patient_key from (
            select unnest([
                case when new.row is not null then {patient_key("new.row.patient_id")} end,
                case when old.row is not null then {patient_key("old.row.patient_id")} end
            ]) as patient_key
            from (select _source_file, _row_number, row_of_file as row from {incoming} as row_of_file) as new
            full join (select _source_file, _row_number, row_of_file as row from {kept} as row_of_file) as old
                using (_source_file, _row_number)
            where new.row is distinct from old.row
        )
        where patient_key is not null
    """


@dataclasses.dataclass
class SourceRead:
    """What reading one source did: files read whole, appended to or left alone; resources skipped."""

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
        self.changed_table = changed_patients_table(source)
        con.execute(f"create or replace table {self.changed_table} (patient_key varchar)")
        con.execute(f"create or replace table {changed_reference_table(source)} (record_type varchar)")
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
        if self.changes_only and not CONTRACT_BY_TYPE[record_type].is_per_patient:
            self.note_reference_change(record_type, incoming)
        elif self.changes_only:
            kept = self.kept(record_type)
            if incoming is None:
                if kept:
                    self.note_patients(f"select {patient_key()} from {kept}")
            else:
                self.con.execute(
                    f"create or replace temp view incoming_rows as select * from read_parquet({sql_string(incoming)})"
                )
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
        if not CONTRACT_BY_TYPE[record_type].is_per_patient:
            self.con.execute(f"insert into {changed_reference_table(self.source)} values (?)", [record_type])
            return True
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
        files = ", ".join(sql_string(path) for path in parts)
        self.con.execute(
            f"create or replace view {view} as select * from read_parquet([{files}], union_by_name = true)"
        )

    def refresh_views(self) -> None:
        for record_type in RECORD_TYPES:
            self.refresh_view(record_type)

    def note_reference_change(self, record_type: str, incoming: Path | None) -> None:
        """Note a reference record type whose rows read anew differ from the kept ones (every patient is then
        recomputed)."""
        kept = self.kept(record_type)
        if kept is None and incoming is None:
            return
        if kept is not None and incoming is not None:
            incoming_rows = f"select * from read_parquet({sql_string(incoming)})"
            if column_names(self.con, kept) == column_names(self.con, f"({incoming_rows})"):
                differing = self.con.execute(
                    f"select count(*) from ((select * from {kept} except all {incoming_rows}) "
                    f"union all ({incoming_rows} except all select * from {kept}))"
                ).fetchall()[0][0]
                if not differing:
                    return
        self.con.execute(f"insert into {changed_reference_table(self.source)} values (?)", [record_type])

    def note_patients(self, keys_sql: str) -> None:
        self.con.execute(f"insert into {self.changed_table} select distinct * from ({keys_sql})")

    def changed_patients(self) -> int:
        return self.con.execute(f"select count(distinct patient_key) from {self.changed_table}").fetchall()[0][0]


def read_contract_csvs(
    store: RawStore, folder: Path, kept: dict[tuple[str, str], FileState]
) -> tuple[SourceRead, list[FileState]]:
    """Read the contract CSVs into raw tables: only appended rows or changed files when changes_only.

    patients.csv, infusions.csv and assessments.csv are required unless the inbox has other sources (mappings,
    FHIR files); clinics.csv is optional.
    """
    read, states = SourceRead(), []
    others = has_other_sources(folder)
    previous_states = {
        contract.file_name: kept.get((CSV_SOURCE, contract.file_name)) if store.changes_only else None
        for contract in CONTRACTS
    }
    changed = {
        file: previous
        for file, previous in previous_states.items()
        if previous and (folder / file).is_file() and not previous.is_unchanged(folder / file)
    }
    # Each changed file is compared with what was kept of it in a thread of its own: hashing a million
    # patients' assessments and infusions (1.1 GB) takes 0.6 s side by side, against 1.0 s one after the other.
    with ThreadPoolExecutor(max_workers=max(len(changed), 1)) as comparing:
        comparisons = {
            file: comparing.submit(compared_with_previous, folder / file, state) for file, state in changed.items()
        }
    for contract in CONTRACTS:
        path, file = folder / contract.file_name, contract.file_name
        previous = previous_states[file]
        if not path.is_file():
            if contract.is_required_file and not others:
                raise InboxError(f"{file}: not found in the inbox {folder}")
            store.replace(contract.record_type, None)
            continue
        if previous and previous.is_unchanged(path):
            read.files[file], states = "unchanged", [*states, previous]
            continue
        if file in comparisons:
            comparison = comparisons[file].result()
        else:  # no kept state, or the file changed after it was compared
            comparison = compared_with_previous(path, previous) if previous else Comparison(None, None)
        same_size = comparison.same_size
        if same_size is not None and same_size.digest == previous.digest:
            # Kept with its new time, so that the next refresh's quick check passes without hashing it again.
            read.files[file] = "unchanged (written again with the same content)"
            states.append(dataclasses.replace(previous, mtime_ns=path.stat().st_mtime_ns))
            continue
        # Its first bytes are the previous file: read what follows them (from the file they were hashed in).
        appended = appended_bytes(path, previous, comparison.prefix) if comparison.prefix else None
        if appended:
            header, tail, digest = appended
            # The header comes first again: line 2 of header + tail is the line after the previous end.
            frame, account = raw_csv_from_bytes(
                header + tail, contract, file, rows_before=previous.data_rows, lines_before=previous.lines - 1
            )
            if store.append(contract.record_type, frame):
                read.files[file] = f"{frame.height} rows appended"
                total = previous.line_account().plus_appended(account)
                states.append(
                    FileState(
                        CSV_SOURCE,
                        file,
                        previous.size + len(tail),
                        path.stat().st_mtime_ns,
                        digest,
                        total.rows(),
                        tail.endswith(b"\n"),
                        *dataclasses.astuple(total),
                        contract.record_type,
                    )
                )
                continue
        incoming = store.incoming_part(contract.record_type)
        # The file is hashed in a thread while it is parsed, unless it was hashed above: a second pass over it,
        # but not a second wait.
        with ThreadPoolExecutor(max_workers=1) as hashing:
            pending = hashing.submit(digest_of_file, path) if same_size is None else None
            account = write_raw_parquet(path, contract, file, incoming)
            store.replace(contract.record_type, incoming)
            digest = same_size if pending is None else pending.result()
            states.append(state_of_file(CSV_SOURCE, file, path, account, contract.record_type, digest))
        read.files[file] = "read whole"
    return read, states


def read_mapped_source(
    store: RawStore, folder: Path, kept: dict[tuple[str, str], FileState]
) -> tuple[SourceRead, list[FileState]]:
    """Read a mapped source's files whole when any of them (or its mapping) is new, changed or gone."""
    paths = {str(path.relative_to(folder)): path for path in source_paths(folder, store.source)}
    previous = {file: state for (source, file), state in kept.items() if source == store.source}
    states = [
        FileState(store.source, file, path.stat().st_size, path.stat().st_mtime_ns) for file, path in paths.items()
    ]
    if (
        store.changes_only
        and previous.keys() == paths.keys()
        and all(previous[file].is_unchanged(path) for file, path in paths.items())
    ):
        return SourceRead(dict.fromkeys(paths, "unchanged")), states
    frames, skipped = frames_of_source(folder, store.source)
    for record_type in RECORD_TYPES:
        store.replace_with_frame(record_type, frames.get(record_type))
    return SourceRead(dict.fromkeys(paths, "read whole"), skipped), states


def read_source(
    store: RawStore, folder: Path, kept: dict[tuple[str, str], FileState]
) -> tuple[SourceRead, list[FileState]]:
    """Read one source of the inbox into its store."""
    reader = read_contract_csvs if store.source == CSV_SOURCE else read_mapped_source
    return reader(store, folder, kept)


def removed_sources(con: duckdb.DuckDBPyConnection, sources: list[str]) -> list[str]:
    """Return the sources the kept raw tables hold that the inbox no longer has."""
    return sorted(set(sources_kept(con)) - set(sources))


def forget_sources(con: duckdb.DuckDBPyConnection, raw_rows: Path, names: list[str]) -> None:
    """Drop the kept rows of sources the inbox no longer has."""
    for name in names:
        for record_type in RECORD_TYPES:
            drop_relation(con, source_table(name, record_type))
        shutil.rmtree(raw_rows / name, ignore_errors=True)
        con.execute(f"drop table if exists {changed_patients_table(name)}")
        con.execute(f"drop table if exists {changed_reference_table(name)}")
        forget_source_files(con, name)
