"""What a refresh knew of each inbox file: enough to tell unchanged, appended to, or otherwise changed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import blake3
import duckdb

from pipelines.database import table_exists
from pipelines.ingest.csv_inbox import LineAccount

FILE_STATES_TABLE = "raw.file_states"
HASH_BLOCK = 1 << 24


def new_digest() -> blake3.blake3:
    """Return an empty digest of a file's bytes: BLAKE3, a cryptographic hash like SHA-256 (which it replaced).

    An appended file's old part is hashed every night to prove it untouched: BLAKE3 hashed a million patients'
    718 MB of assessments in 0.15 to 0.21 s against SHA-256's 0.45 s. It lets go of the interpreter lock too.
    """
    return blake3.blake3()


def digest_of_bytes(data: bytes) -> str:
    """Return the hex digest (new_digest) of bytes at hand."""
    digest = new_digest()
    digest.update(data)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FileState:
    """One inbox file as a refresh read it: size, modification time and, when read whole, digest and rows."""

    source: str
    file: str
    size: int
    mtime_ns: int
    digest: str | None = None
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
    """A file's digest (new_digest) and whether it ends with a line break (rows appended after it start a line of
    their own)."""

    digest: str
    ends_with_newline: bool


def digest_of_file(path: Path) -> FileDigest:
    """Return the digest of a file, read in blocks.

    The hash lets go of the interpreter lock while it hashes a block, so this may run in a thread beside the
    parse of the same file (raw_store.read_contract_csvs): a million patients' files take 0.8 s to hash.
    """
    digest, last = new_digest(), b""
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
        digest.digest,
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
    if previous.digest is None or path.stat().st_size != previous.size:
        return None
    return digest_of_file(path)


@dataclasses.dataclass(frozen=True)
class Prefix:
    """The digest's state after a file's first bytes, and the file they were read from (device, inode, size and
    modification time): rows appended to that file are read later, and only from that very file."""

    digest: blake3.blake3
    identity: tuple[int, int, int, int]


def identity_of(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def prefix_digest(handle: BinaryIO, previous: FileState) -> blake3.blake3 | None:
    """Return the digest's state after the open file's first previous.size bytes when they are exactly the previous
    file, else None."""
    digest = new_digest()
    handle.seek(0)
    remaining = previous.size
    while remaining:
        block = handle.read(min(HASH_BLOCK, remaining))
        if not block:
            return None
        digest.update(block)
        remaining -= len(block)
    return digest if digest.hexdigest() == previous.digest else None


def may_be_appended_to(path: Path, previous: FileState) -> bool:
    """True when rows may have been appended: the file grew, and the previous file ended with a line break."""
    return previous.digest is not None and previous.ends_with_newline and path.stat().st_size > previous.size


def unchanged_prefix(path: Path, previous: FileState) -> Prefix | None:
    """Return the digest of the file's first previous.size bytes when rows may have been appended after them and
    they are exactly the previous file; else None."""
    if not may_be_appended_to(path, previous):
        return None
    with open(path, "rb") as handle:
        identity = identity_of(os.fstat(handle.fileno()))
        digest = prefix_digest(handle, previous)
    return None if digest is None else Prefix(digest, identity)


def appended_bytes(path: Path, previous: FileState, prefix: Prefix | None = None) -> tuple[bytes, bytes, str] | None:
    """Return (header line, bytes after the previous end, digest of the whole file) when rows were only appended;
    None, and the file is read whole, otherwise.

    prefix: unchanged_prefix worked out before, used if the file is still the one it was read from (else its
    first bytes are hashed again, from the same opening as the rows after them).
    """
    if not may_be_appended_to(path, previous):
        return None
    with open(path, "rb") as handle:
        if prefix is not None and identity_of(os.fstat(handle.fileno())) == prefix.identity:
            digest = prefix.digest.copy()
        else:
            digest = prefix_digest(handle, previous)
            if digest is None:
                return None
        handle.seek(0)
        header = handle.readline()
        handle.seek(previous.size)
        tail = handle.read()
    if header.startswith((b"\xff\xfe", b"\xfe\xff")) or not header.endswith(b"\n"):
        return None  # UTF-16 or a one-line file: read whole
    digest.update(tail)
    return header, tail, digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A changed file compared with its kept state: its digest when it kept its size (digest_if_same_size), or
    the digest of its unchanged first bytes when it grew (unchanged_prefix)."""

    same_size: FileDigest | None
    prefix: Prefix | None


def compared_with_previous(path: Path, previous: FileState) -> Comparison:
    """Return how a file whose size or time changed compares with its kept state. The rows appended are read
    afterwards (appended_bytes), so that comparing files side by side holds none of them."""
    return Comparison(digest_if_same_size(path, previous), unchanged_prefix(path, previous))


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
            source varchar, file varchar, size bigint, mtime_ns bigint, digest varchar, data_rows bigint,
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
