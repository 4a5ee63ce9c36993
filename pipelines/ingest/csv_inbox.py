"""Read one inbox CSV into a raw table: every original column kept as text, every row numbered."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path
from typing import TypeVar

import polars as pl

from pipelines.ingest.contract import (
    ITEM_COLUMN,
    PARSE_ERROR,
    ROW_NUMBER,
    SOURCE_FILE,
    RecordContract,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


class InboxError(Exception):
    """A file that cannot be used at all: the run stops and nothing is published."""


def text_from_bytes(data: bytes, file_label: str) -> str:
    """Return the file's text, honouring a UTF-8 or UTF-16 byte-order mark; fail naming the file otherwise."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InboxError(
            f"{file_label}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); "
            "export the file as UTF-8 (CSV UTF-8 in Excel) and run again"
        ) from None


def frame_from_ragged_text(text: str) -> pl.DataFrame:
    """Return the rows of a CSV with ragged rows; a row longer than the header keeps its text in _parse_error."""
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, [])
    width = len(header)
    records: dict[str, list] = {name: [] for name in header}
    errors: list[str | None] = []
    for fields in rows:
        if not fields:
            continue
        if len(fields) > width:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(fields)
            errors.append(f"row has {len(fields)} fields but the header has {width}: {buffer.getvalue()}")
        else:
            errors.append(None)
        padded = fields[:width] + [None] * (width - len(fields))
        for name, value in zip(header, padded, strict=True):
            records[name].append(value)
    frame = pl.DataFrame(records, schema=dict.fromkeys(header, pl.String))
    return frame.with_row_index(ROW_NUMBER, offset=1).with_columns(pl.Series(PARSE_ERROR, errors, dtype=pl.String))


def canonical_header(columns: list[str], contract: RecordContract, file_label: str) -> dict[str, str]:
    """Return renames that give contract columns their canonical names (matched ignoring case and spaces)."""
    wanted = {name: name for name in contract.columns}
    renames: dict[str, str] = {}
    seen: dict[str, str] = {}
    for column in columns:
        if column in (ROW_NUMBER, PARSE_ERROR):
            continue
        key = column.strip().lower()
        if column.startswith("_"):
            raise InboxError(f"{file_label}: column '{column}' starts with '_', which is reserved for the pipeline")
        if key in seen:
            raise InboxError(f"{file_label}: columns '{seen[key]}' and '{column}' have the same name")
        seen[key] = column
        if key in wanted or (contract.has_items and ITEM_COLUMN.fullmatch(key)):
            renames[column] = key
    return renames


def raw_frame_from_file(path: Path, contract: RecordContract, source_file: str) -> pl.DataFrame:
    """Return the raw table of one inbox file, or raise InboxError naming the file and what is wrong.

    Columns: _source_file, _row_number, _parse_error, every column of the file
    (contract columns renamed to their canonical spelling, optional ones that
    are absent added empty). The item columns of assessments stay as sent;
    raw.assessments lists them as _item_values (contract.item_values_sql).
    """
    return raw_frame_from_bytes(bytes_of_file(path, source_file), contract, source_file)


def bytes_of_file(path: Path, source_file: str) -> bytes:
    """Return a file's bytes, or raise InboxError naming it."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise InboxError(f"{source_file}: cannot be read ({error.strerror})") from None


def raw_frame_from_bytes(data: bytes, contract: RecordContract, source_file: str, rows_before: int = 0) -> pl.DataFrame:
    """Return the raw table of a CSV's bytes; rows are numbered after rows_before (rows appended to a file)."""
    frame = frame_from_bytes(data, source_file)
    if rows_before:
        frame = frame.with_columns(pl.col(ROW_NUMBER) + rows_before)
    frame = frame.rename(canonical_header(frame.columns, contract, source_file))
    return contract_frame(frame, contract, source_file)


def frame_from_bytes(data: bytes, file_label: str) -> pl.DataFrame:
    """Return the rows of a CSV file's bytes as text with a 1-based row number.

    Plain UTF-8 goes to Polars as it is (Polars skips a UTF-8 BOM); UTF-16 is
    re-encoded first. When Polars refuses the file, decoding it says whether it
    is not UTF-8 (the run stops naming the file and line) or has rows longer
    than its header (read again with the csv module, those rows kept for
    quarantine).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        data = text_from_bytes(data, file_label).encode("utf-8")
    try:
        return read_csv_text(data)
    except pl.exceptions.ComputeError:
        return frame_from_ragged_text(text_from_bytes(data, file_label))


# How every inbox CSV is read: all text, rows numbered from 1 (Polars skips a UTF-8 byte-order mark).
CSV_OPTIONS = {
    "infer_schema": False,
    "empty_string_is_null": False,
    "row_index_name": ROW_NUMBER,
    "row_index_offset": 1,
    "raise_if_empty": False,
}


def read_csv_text(data: bytes) -> pl.DataFrame:
    """Return well-formed CSV bytes as text columns with a 1-based row number."""
    return pl.read_csv(data, **CSV_OPTIONS).with_columns(pl.lit(None, dtype=pl.String).alias(PARSE_ERROR))


def write_raw_parquet(path: Path, contract: RecordContract, source_file: str, target: Path) -> int:
    """Write one inbox CSV's raw table to a Parquet file; return its data rows, or raise InboxError.

    A well-formed UTF-8 file streams from disk to Parquet in bounded memory (a
    million patients' assessments would otherwise be held as bytes and as a
    frame at once). A UTF-16 file, one that is not UTF-8 (the run stops naming
    the line) or one with rows longer than its header takes the careful path
    of raw_frame_from_bytes.
    """
    with open(path, "rb") as handle:
        is_utf16 = handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    if not is_utf16:
        try:
            header = pl.read_csv(path, n_rows=0, infer_schema=False, raise_if_empty=False).columns
            rows = pl.scan_csv(path, **CSV_OPTIONS).with_columns(pl.lit(None, dtype=pl.String).alias(PARSE_ERROR))
            contract_frame(
                rows.rename(canonical_header(header, contract, source_file)), contract, source_file
            ).sink_parquet(target, compression="snappy")
            return pl.scan_parquet(target).select(pl.len()).collect().item()
        except pl.exceptions.PolarsError:
            target.unlink(missing_ok=True)
    frame = raw_frame_from_file(path, contract, source_file)
    frame.write_parquet(target, compression="snappy")
    return frame.height


def contract_frame(frame: Frame, contract: RecordContract, source_file: str) -> Frame:
    """Return a frame with canonical column names as a raw table: bookkeeping first, absent optional columns added.

    frame (eager or lazy) must hold _row_number and _parse_error; _source_file is added when missing.
    """
    columns = frame.collect_schema().names()
    missing = [name for name in contract.required if name not in columns]
    if missing:
        found = ", ".join(c for c in columns if c not in (ROW_NUMBER, PARSE_ERROR)) or "none"
        raise InboxError(f"{source_file}: required column '{missing[0]}' is missing (columns found: {found})")
    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in contract.optional if name not in columns]
    frame = frame.with_columns(*absent)
    if SOURCE_FILE not in columns:
        frame = frame.with_columns(pl.lit(source_file).alias(SOURCE_FILE))
    leading = [SOURCE_FILE, ROW_NUMBER, PARSE_ERROR]
    return frame.select(*leading, pl.exclude(leading)).with_columns(pl.col(ROW_NUMBER).cast(pl.Int64))


def empty_raw_frame(contract: RecordContract) -> pl.DataFrame:
    """Return a raw table of no rows with the contract's columns: a record type that no source sent."""
    schema = {**dict.fromkeys(contract.required, pl.String), ROW_NUMBER: pl.Int64, PARSE_ERROR: pl.String}
    return contract_frame(pl.DataFrame(schema=schema), contract, "")
