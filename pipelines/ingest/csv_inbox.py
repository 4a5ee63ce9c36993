"""Read one inbox CSV into a raw table: every original column kept as text, every row numbered."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from pipelines.ingest.contract import (
    ITEM_COLUMN,
    LINE_NUMBER,
    PARSE_ERROR,
    ROW_NUMBER,
    SOURCE_FILE,
    RecordContract,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


# The columns the reader adds; a clinic's columns never start with an underscore.
BOOKKEEPING = (SOURCE_FILE, ROW_NUMBER, LINE_NUMBER, PARSE_ERROR)


class InboxError(Exception):
    """A file that cannot be used at all: the run stops and nothing is published."""


# At most this much of a clinic's data goes into a message: enough to find the value, never a whole file.
SHOWN_CHARACTERS = 200
# CR-only (old Mac, Excel's "CSV (Macintosh)"), CRLF and LF line ends read alike.
LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
SCAN_BLOCK = 1 << 24
LF = ord("\n")


def shown(value: str) -> str:
    """Return a value for a message: quoted, control characters escaped, cut to SHOWN_CHARACTERS."""
    text = repr(value)[1:-1]
    if len(text) > SHOWN_CHARACTERS:
        text = text[: SHOWN_CHARACTERS - 1] + "…"
    return f"'{text}'"


@dataclasses.dataclass(frozen=True)
class LineAccount:
    """Where every physical line of a CSV file went (the header's included).

    lines = header_lines + blank_lines + continuation_lines + data rows, where
    continuation_lines are the lines after the first of rows whose quoted
    values span lines.
    """

    lines: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    continuation_lines: int = 0

    def rows(self) -> int:
        return self.lines - self.header_lines - self.blank_lines - self.continuation_lines

    def plus_appended(self, appended: LineAccount) -> LineAccount:
        """Return the account of a file after lines were appended (appended counts its own header line)."""
        return LineAccount(
            self.lines + appended.lines - appended.header_lines,
            self.header_lines,
            self.blank_lines + appended.blank_lines,
            self.continuation_lines + appended.continuation_lines,
        )


@dataclasses.dataclass(frozen=True)
class ByteScan:
    """What one pass over a file's bytes tells of its lines, before any parsing."""

    lines: int
    # Line ends other than LF and CRLF, blank lines or a byte-order mark of UTF-16: the careful reader's work.
    needs_care: bool
    # How often the needle scan_bytes was given occurs in the file (0 without one).
    needle_count: int = 0


def scan_bytes(blocks, needle: bytes = b"") -> ByteScan:
    """Count the lines of a file read as blocks of bytes, say whether the fast reader can take it, and count a
    needle's occurrences (one spanning two blocks counts too)."""
    lines = size = needle_count = 0
    needs_care = False
    last_two = previous_end = b""
    for block in blocks:
        if not size and block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"\n", b"\r")):
            needs_care = True  # UTF-16, or a blank first line
        size += len(block)
        # Where the LFs are, as a NumPy view of the block's bytes: counted and paired several times faster than
        # bytes' own count and search, which stop at every LF of a file whose lines are some forty bytes long.
        is_lf = np.frombuffer(block, dtype=np.uint8) == LF
        lines += int(np.count_nonzero(is_lf))
        if not needs_care:
            needs_care = has_line_ends_needing_care(last_two, block, is_lf)
        last_two = (last_two + block[-2:])[-2:]
        if needle:
            # An occurrence across the seam lies within the needle's length less one either side of it; only
            # those few bytes are joined, never the block.
            reach = len(needle) - 1
            needle_count += (previous_end + block[:reach]).count(needle) + block.count(needle)
            previous_end = (previous_end + block[-reach:])[-reach:] if reach else b""
    if last_two.endswith(b"\r"):
        needs_care = True
    if size and not last_two.endswith(b"\n"):
        lines += 1  # a last line without a line break
    return ByteScan(lines, needs_care, needle_count)


def has_line_ends_needing_care(last_two: bytes, block: bytes, is_lf: np.ndarray) -> bool:
    """Return whether a block, read after a block that ended with last_two, holds a line end the fast reader
    does not see (a CR not followed by LF) or a blank line, which it would read as a row. is_lf: which of the
    block's bytes are LF.

    The block is searched where it lies, never copied, and its CRs are counted only when it has one: most
    exports end their lines with LF alone, and finding none is ten times faster than counting them. Only the
    few bytes either side of the seam are joined; a CR at the very end of the block is judged with the next one.
    """
    if b"\r" in block:
        lone_cr = block.count(b"\r") - block.count(b"\r\n") - block.endswith(b"\r")
        if lone_cr > 0 or b"\n\r\n" in block:
            return True
    if np.any(is_lf[1:] & is_lf[:-1]):  # two LFs in a row
        return True
    seam = last_two + block[:2]
    return (last_two.endswith(b"\r") and not block.startswith(b"\n")) or b"\n\n" in seam or b"\n\r\n" in seam


def scan_file(path: Path, needle: bytes = b"") -> ByteScan:
    with open(path, "rb") as handle:
        return scan_bytes(iter(lambda: handle.read(SCAN_BLOCK), b""), needle)


def text_from_bytes(data: bytes, file_label: str) -> str:
    """Return the file's text, honouring a UTF-8 or UTF-16 byte-order mark; fail naming the file otherwise."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as error:
                raise InboxError(
                    f"{file_label}: not readable as {encoding.upper().removesuffix('-SIG')} text ({error.reason} at "
                    f"byte {error.start}); export the file again as UTF-8 (CSV UTF-8 in Excel)"
                ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InboxError(
            f"{file_label}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); "
            "export the file as UTF-8 (CSV UTF-8 in Excel) and run again"
        ) from None


def fields_of_line(line: str) -> list[str]:
    """Return the values of one line of CSV (an unclosed quote runs to the end of the line)."""
    return next(csv.reader([line]), [])


def ends_inside_quotes(line: str, inside: bool = False) -> bool:
    """Return whether a line ends inside a quoted value, given whether it starts inside one.

    Only a quote at the start of a value opens one (5" in a value is a
    character); inside, two quotes are one quote and a lone quote closes it.
    """
    if '"' not in line:
        return inside
    position, length = 0, len(line)
    while position < length:
        character = line[position]
        if inside:
            if character == '"':
                if position + 1 < length and line[position + 1] == '"':
                    position += 1
                else:
                    inside = False
        elif character == '"' and (position == 0 or line[position - 1] == ","):
            inside = True
        position += 1
    return inside


def is_row_of_its_own(line: str, width: int) -> bool:
    """True when a line, read alone, is a whole row: no quoted value left open, and the header's width."""
    return not ends_inside_quotes(line) and len(fields_of_line(line)) == width


def frame_from_text(text: str, file_label: str) -> tuple[pl.DataFrame, LineAccount]:
    """Return the rows of a CSV's text, line by line, with where each physical line went.

    The careful reader, for what the fast one cannot take: any line ends,
    blank lines (skipped and counted), rows longer than the header (kept with
    a _parse_error for quarantine), and quoted values over several lines. A
    row whose quoted value is never closed, or would run over lines that are
    rows of their own (a stray quote that swallows the rows after it), is
    judged broken: its first line is rejected as malformed and the lines after
    it are read again as rows.
    """
    parts = LINE_BREAK.split(text)
    lines, breaks = parts[0::2], parts[1::2]
    if lines and lines[-1] == "":
        lines.pop()  # the break at the end of the last line
    count, index, blank, continuation = len(lines), 0, 0, 0
    while index < count and lines[index] == "":
        blank, index = blank + 1, index + 1
    header = header_of_text(lines[index], file_label) if index < count else []
    header_lines = 1 if index < count else 0
    width, index = len(header), index + 1
    records: dict[str, list] = {name: [] for name in header}
    numbers: list[int] = []
    errors: list[str | None] = []
    while index < count:
        line = lines[index]
        if line == "":
            blank, index = blank + 1, index + 1
            continue
        last, inside = index, ends_inside_quotes(line)
        while inside and last + 1 < count:
            last += 1
            inside = ends_inside_quotes(lines[last], inside=True)
        error = None
        if inside:
            error = (
                f"line {index + 1} opens a quoted value that no later quote closes; this line is rejected and "
                "the lines after it are read as rows"
            )
        elif last > index and any(is_row_of_its_own(lines[k], width) for k in range(index + 1, last + 1)):
            error = (
                f"line {index + 1} opens a quoted value that it does not close: read on, it would run to line "
                f"{last + 1} over rows of their own; this line is rejected and the lines after it are read as rows"
            )
        if error is not None:
            last = index
            fields = fields_of_line(line)
        else:
            # The line breaks inside a quoted value are kept as sent.
            record = "".join(lines[k] + breaks[k] for k in range(index, last)) + lines[last]
            fields = next(csv.reader(io.StringIO(record, newline="")), [])
            continuation += last - index
        if error is None and len(fields) > width:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(fields[width:])
            # The values past the header have no column: kept here, so that nothing sent is lost.
            error = (
                f"line {index + 1} has {len(fields)} values but the header has {width}; "
                f"the values past the header: {buffer.getvalue()}"
            )
        padded = fields[:width] + [""] * (width - len(fields))
        for name, value in zip(header, padded, strict=True):
            records[name].append(value)
        numbers.append(index + 1)
        errors.append(error)
        index = last + 1
    frame = pl.DataFrame(records, schema=dict.fromkeys(header, pl.String))
    frame = frame.with_row_index(ROW_NUMBER, offset=1).with_columns(
        pl.Series(LINE_NUMBER, numbers, dtype=pl.Int64), pl.Series(PARSE_ERROR, errors, dtype=pl.String)
    )
    return frame, LineAccount(count, header_lines, blank, continuation)


def header_of_text(first_line: str, file_label: str) -> list[str]:
    """Return a header line's column names; fail naming both columns when two have the same name, or a name that
    the pipeline's own columns use."""
    names = fields_of_line(first_line)
    seen: dict[str, tuple[int, str]] = {}
    for position, name in enumerate(names, start=1):
        key = name.strip().lower()
        if key in seen:
            first, first_name = seen[key]
            raise InboxError(
                f"{file_label}: columns {shown(first_name)} and {shown(name)} have the same name (columns "
                f"{first} and {position} of the header); rename one and run again"
            )
        if name.startswith("_"):
            raise InboxError(f"{file_label}: column {shown(name)} starts with '_', which is reserved for the pipeline")
        seen[key] = (position, name)
    return names


def first_line(head: bytes) -> str:
    """Return the first line of a file's first bytes as text (for its header), whatever its line ends."""
    return LINE_BREAK.split(head[: 1 << 20].decode("utf-8-sig", errors="replace"), maxsplit=1)[0]


def first_line_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return first_line(handle.read(1 << 20))


def marked_repeated_header(frame: Frame, header: list[str]) -> Frame:
    """Mark rows that repeat the header line (two exports pasted together) as malformed.

    Every value of every row is compared (a fifth of the time a million patients' assessments take to read):
    write_raw_parquet skips it for a file in which the first column's name is found only in the header.
    """
    if not header:
        return frame
    repeats = pl.all_horizontal([pl.col(name).str.strip_chars() == name.strip() for name in header])
    return frame.with_columns(
        pl.when(repeats)
        .then(pl.lit("the header line repeated inside the file: not a row"))
        .otherwise(pl.col(PARSE_ERROR))
        .alias(PARSE_ERROR)
    )


def canonical_header(columns: list[str], contract: RecordContract) -> dict[str, str]:
    """Return renames that give contract columns their canonical names (matched ignoring case and spaces).

    The header was judged by header_of_text first (names alike, reserved names), on either reader.
    """
    wanted = {name: name for name in contract.columns}
    renames: dict[str, str] = {}
    for column in columns:
        key = column.strip().lower()
        if column not in BOOKKEEPING and (key in wanted or (contract.has_items and ITEM_COLUMN.fullmatch(key))):
            renames[column] = key
    return renames


def raw_frame_from_file(path: Path, contract: RecordContract, source_file: str) -> pl.DataFrame:
    """Return the raw table of one inbox file, or raise InboxError naming the file and what is wrong.

    Columns: _source_file, _row_number, _line_number, _parse_error, every
    column of the file (contract columns renamed to their canonical spelling,
    optional ones that are absent added empty). The item columns of
    assessments stay as sent; raw.assessments lists them as _item_values
    (contract.item_values_sql).
    """
    return raw_csv_from_bytes(bytes_of_file(path, source_file), contract, source_file)[0]


def bytes_of_file(path: Path, source_file: str) -> bytes:
    """Return a file's bytes, or raise InboxError naming it."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise InboxError(f"{source_file}: cannot be read ({error.strerror})") from None


def raw_csv_from_bytes(
    data: bytes, contract: RecordContract, source_file: str, rows_before: int = 0, lines_before: int = 0
) -> tuple[pl.DataFrame, LineAccount]:
    """Return the raw table of a CSV's bytes and where its lines went.

    Rows and lines are numbered after rows_before and lines_before (lines
    appended to a file, given with its header line first).
    """
    frame, account = frame_from_bytes(data, source_file)
    if rows_before or lines_before:
        frame = frame.with_columns(pl.col(ROW_NUMBER) + rows_before, pl.col(LINE_NUMBER) + lines_before)
    return raw_frame(frame, contract, source_file), account


def raw_frame(frame: Frame, contract: RecordContract, source_file: str, header_may_repeat: bool = True) -> Frame:
    """Return a read CSV's rows as a raw table: repeated header lines marked, contract columns named.

    header_may_repeat False says that no row can repeat the header line (header_found_once).
    """
    columns = [c for c in frame.collect_schema().names() if c not in BOOKKEEPING]
    if header_may_repeat:
        frame = marked_repeated_header(frame, columns)
    return contract_frame(frame.rename(canonical_header(columns, contract)), contract, source_file)


def first_name_of_header(first_line: str) -> bytes:
    """Return the first column's name as a repeated header line would hold it, stripped (marked_repeated_header),
    as UTF-8: the needle whose single occurrence in a file shows that no row repeats its header. Empty when the
    header does not hold the name's bytes as they are (a name with a quote in it, written as two)."""
    names = fields_of_line(first_line)
    name = names[0].strip().encode() if names else b""
    return name if name in first_line.encode() else b""


def header_found_once(scan: ByteScan) -> bool:
    """True when a file's scan found the first column's name once, in the header: then no row's first value can
    be that name, so none repeats the header line. (An empty name is found everywhere.)"""
    return scan.needle_count == 1


def frame_from_bytes(data: bytes, file_label: str) -> tuple[pl.DataFrame, LineAccount]:
    """Return the rows of a CSV file's bytes as text with 1-based row and line numbers, and where its lines went.

    Polars reads a file whose every line is a row (LF or CRLF ends, no blank
    line, no value over several lines); anything else is read line by line
    (frame_from_text), as is a file Polars refuses. A file that is not UTF-8
    or UTF-16 stops the run naming the file and line.
    """
    if not data.strip(b"\r\n\t "):
        raise InboxError(f"{file_label}: the file is empty (not even a header line); export it again")
    scan = scan_bytes([data])
    if not scan.needs_care:
        header_of_text(first_line(data), file_label)
        try:
            frame = read_csv_text(data)
            if frame.height + 1 == scan.lines:
                return frame.with_columns(line_from_row()), LineAccount(scan.lines, 1)
        except pl.exceptions.ComputeError:
            pass
    return frame_from_text(text_from_bytes(data, file_label), file_label)


def line_from_row() -> pl.Expr:
    """The line of a row in a file whose every line after the header is a row."""
    return (pl.col(ROW_NUMBER).cast(pl.Int64) + 1).alias(LINE_NUMBER)


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


def write_raw_parquet(path: Path, contract: RecordContract, source_file: str, target: Path) -> LineAccount:
    """Write one inbox CSV's raw table to a Parquet file; return where its lines went, or raise InboxError.

    A file whose every line is a row streams from disk to Parquet in bounded
    memory (a million patients' assessments would otherwise be held as bytes
    and as a frame at once). Anything else (other line ends, blank lines,
    values over several lines, UTF-16, rows longer than the header, not
    UTF-8) takes the careful path of raw_csv_from_bytes.
    """
    header = first_line_of(path)
    scan = scan_file(path, needle=first_name_of_header(header))
    if not scan.needs_care and scan.lines:
        header_of_text(header, source_file)
        try:
            rows = pl.scan_csv(path, **CSV_OPTIONS).with_columns(
                line_from_row(), pl.lit(None, dtype=pl.String).alias(PARSE_ERROR)
            )
            raw = raw_frame(rows, contract, source_file, header_may_repeat=not header_found_once(scan))
            raw.sink_parquet(target, compression="snappy")
            if pl.scan_parquet(target).select(pl.len()).collect().item() + 1 == scan.lines:
                return LineAccount(scan.lines, 1)
        except pl.exceptions.PolarsError:
            pass
        target.unlink(missing_ok=True)
    frame, account = raw_csv_from_bytes(bytes_of_file(path, source_file), contract, source_file)
    frame.write_parquet(target, compression="snappy")
    return account


def contract_frame(frame: Frame, contract: RecordContract, source_file: str) -> Frame:
    """Return a frame with canonical column names as a raw table: bookkeeping first, absent optional columns added.

    frame (eager or lazy) must hold _row_number and _parse_error; _source_file
    and _line_number (null: a source without lines) are added when missing.
    """
    columns = frame.collect_schema().names()
    missing = [name for name in contract.required if name not in columns]
    if missing:
        found = ", ".join(c for c in columns if c not in BOOKKEEPING) or "none"
        raise InboxError(
            f"{source_file}: required column '{missing[0]}' is missing (columns found: {shown(found)[1:-1]})"
        )
    absent = [pl.lit(None, dtype=pl.String).alias(name) for name in contract.optional if name not in columns]
    frame = frame.with_columns(*absent)
    if SOURCE_FILE not in columns:
        frame = frame.with_columns(pl.lit(source_file).alias(SOURCE_FILE))
    if LINE_NUMBER not in columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(LINE_NUMBER))
    leading = [SOURCE_FILE, ROW_NUMBER, LINE_NUMBER, PARSE_ERROR]
    return frame.select(*leading, pl.exclude(leading)).with_columns(
        pl.col(ROW_NUMBER).cast(pl.Int64), pl.col(LINE_NUMBER).cast(pl.Int64)
    )


def empty_raw_frame(contract: RecordContract) -> pl.DataFrame:
    """Return a raw table of no rows with the contract's columns: a record type that no source sent."""
    schema = {**dict.fromkeys(contract.required, pl.String), ROW_NUMBER: pl.Int64, PARSE_ERROR: pl.String}
    return contract_frame(pl.DataFrame(schema=schema), contract, "")
