"""What a refresh knew of each inbox file: enough to tell unchanged, appended to, or otherwise changed."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from pathlib import Path

import duckdb

from pipelines.database import table_exists
from pipelines.ingest.csv_inbox import LineAccount

FILE_STATES_TABLE = "raw.file_states"
HASH_BLOCK = 1 << 24


@dataclasses.dataclass(frozen=True)
class FileState:
    """One inbox file as a refresh read it: size, modification time and, when read whole, digest and rows."""

    source: str
    file: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    data_rows: int | None = None
    ends_with_newline: bool | None = None
    # Where the lines of a CSV went (csv_inbox.LineAccount); None for files read by a mapping.
    lines: int | None = None
    header_lines: int | None = None
    blank_lines: int | None = None
    continuation_lines: int | None = None
    # The record type a contract CSV holds (patients, infusions, assessments); None for mapped sources.
    record_type: str | None = None

    def line_account(self) -> LineAccount:
        return LineAccount(self.lines or 0, self.header_lines or 0, self.blank_lines or 0, self.continuation_lines or 0)

    def is_unchanged(self, path: Path) -> bool:
        """The quick check rsync and make use: same size, same modification time."""
        stat = path.stat()
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


@dataclasses.dataclass(frozen=True)
class FileDigest:
    """A file's SHA-256 and whether it ends with a line break (rows appended after it start a line of their own)."""

    sha256: str
    ends_with_newline: bool


def digest_of_file(path: Path) -> FileDigest:
    """Return the digest of a file, read in blocks.

    hashlib lets go of the interpreter lock while it hashes a block, so this may run in a thread beside the
    parse of the same file (raw_store.read_contract_csvs): a million patients' files take 0.8 s to hash.
    """
    digest, last = hashlib.sha256(), b""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
            last = block
    return FileDigest(digest.hexdigest(), last.endswith(b"\n"))


def state_of_file(
    source: str, file: str, path: Path, account: LineAccount, record_type: str, digest: FileDigest
) -> FileState:
    """Return the state of a file just read whole: size, time, digest_of_file and where its lines went."""
    stat = path.stat()
    return FileState(
        source,
        file,
        stat.st_size,
        stat.st_mtime_ns,
        digest.sha256,
        account.rows(),
        digest.ends_with_newline,
        *dataclasses.astuple(account),
        record_type,
    )


def digest_if_same_size(path: Path, previous: FileState) -> FileDigest | None:
    """Return a file's digest when it has the size it had and a kept digest to compare with, else None.

    A file whose time changed may hold exactly the bytes it held: clinic systems often write every file of the
    nightly export anew. Hashing it (0.05 s for a million patients' patients.csv) is far cheaper than reading it
    whole and finding which patients changed; when the bytes differ, the digest is the read file's state.
    """
    if previous.sha256 is None or path.stat().st_size != previous.size:
        return None
    return digest_of_file(path)


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


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A changed file compared with its kept state: its digest when it kept its size, or what was appended."""

    same_size: FileDigest | None
    appended: tuple[bytes, bytes, str] | None


def compared_with_previous(path: Path, previous: FileState) -> Comparison:
    """Return how a file whose size or time changed compares with its kept state (digest_if_same_size, and
    appended_bytes when its bytes are not the same)."""
    same_size = digest_if_same_size(path, previous)
    if same_size is not None and same_size.sha256 == previous.sha256:
        return Comparison(same_size, None)
    return Comparison(same_size, appended_bytes(path, previous))


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
            ends_with_newline boolean, lines bigint, header_lines bigint, blank_lines bigint,
            continuation_lines bigint, record_type varchar)"""
    )
    con.execute(f"delete from {FILE_STATES_TABLE} where source = ?", [source])
    for state in states:
        values = dataclasses.astuple(state)
        con.execute(f"insert into {FILE_STATES_TABLE} values ({', '.join('?' * len(values))})", list(values))


def sources_kept(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the sources whose files the kept state knows."""
    if not table_exists(con, FILE_STATES_TABLE):
        return []
    return [row[0] for row in con.execute(f"select distinct source from {FILE_STATES_TABLE} order by 1").fetchall()]


def forget_source_files(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Drop the kept state of one source's files."""
    con.execute(f"delete from {FILE_STATES_TABLE} where source = ?", [source])
