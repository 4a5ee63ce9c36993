"""Read a clinic's export through its mapping into raw tables of the inbox contract."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import polars as pl

from pipelines.ingest.contract import LINE_NUMBER, PARSE_ERROR, ROW_NUMBER, SOURCE_FILE
from pipelines.ingest.csv_inbox import BOOKKEEPING, InboxError, contract_frame, frame_from_bytes
from pipelines.ingest.mapping import (
    CONTRACT_BY_TYPE,
    TIMESTAMP_COLUMNS,
    MappingError,
    RecordMapping,
    SourceMapping,
    check_record_mapping,
)


def read_table(path: Path, file_format: str, sheet: str | None, label: str) -> pl.DataFrame:
    """Return a CSV or Excel sheet as text columns with a 1-based _row_number and a _parse_error column."""
    if file_format == "xlsx":
        try:
            frame = (
                pl.read_excel(path, sheet_name=sheet, engine="calamine", infer_schema_length=0)
                if sheet
                else pl.read_excel(path, engine="calamine", infer_schema_length=0)
            )
        except Exception as error:  # fastexcel raises its own types for corrupt files and missing sheets
            raise InboxError(f"{label}: cannot be read as Excel ({str(error).splitlines()[0]})") from None
        frame = frame.with_columns(pl.all().cast(pl.String))
        # A sheet's line is its row as the spreadsheet shows it: the header is row 1.
        return frame.with_row_index(ROW_NUMBER, offset=1).with_columns(
            pl.col(ROW_NUMBER).cast(pl.Int64),
            (pl.col(ROW_NUMBER).cast(pl.Int64) + 1).alias(LINE_NUMBER),
            pl.lit(None, dtype=pl.String).alias(PARSE_ERROR),
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InboxError(f"{label}: cannot be read ({error.strerror})") from None
    return frame_from_bytes(data, label)[0]


def first_sheet_name(path: Path) -> str:
    """Return the name of a workbook's first sheet, the one read when a mapping names none."""
    import fastexcel

    return fastexcel.read_excel(path).sheet_names[0]


def matching_files(inbox: Path, pattern: str) -> list[Path]:
    return sorted(p for p in inbox.glob(pattern) if p.is_file())


# How a spreadsheet's true date cells read as text (calamine): ISO, whatever the sheet displays. The mapping's
# date_format is for the text cells beside them.
SPREADSHEET_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")


def spreadsheet_date(text: pl.Expr) -> pl.Expr:
    """Return a date cell's text (ISO, as a spreadsheet's true date cells read) as a datetime; null otherwise."""
    return pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in SPREADSHEET_DATE_FORMATS])


def timestamp_text(column: str, record: RecordMapping, timezone: str | None) -> pl.Expr:
    """Return ISO 8601 text for a timestamp column: parsed with the mapping's format, with its clinic's offset.

    Values the format does not fit are passed on unchanged, so that the row is
    quarantined as unparseable_timestamp naming the real file and value.
    """
    raw = pl.col(column).str.strip_chars()
    if record.date_format is None:
        return raw
    has_time = any(directive in record.date_format for directive in ("%H", "%I", "%M"))
    parsed = pl.coalesce(raw.str.strptime(pl.Datetime("us"), record.date_format, strict=False), spreadsheet_date(raw))
    if has_time and timezone:
        text = parsed.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.strftime(
            "%Y-%m-%dT%H:%M:%S%:z"
        )
    else:
        text = parsed.dt.strftime("%Y-%m-%dT%H:%M:%S" if has_time else "%Y-%m-%d")
    return pl.coalesce(text, raw)


def long_assessments(frame: pl.DataFrame, record: RecordMapping) -> pl.DataFrame:
    """Return one assessment row per filled instrument (or item set) of a wide row."""
    parts = []
    for source, code in record.instrument_columns.items():
        items = record.item_columns.get(code, [])
        # A form counts when its total or any of its items is filled: an empty total is summed from the items.
        filled = frame.filter(
            pl.any_horizontal([pl.col(c).str.strip_chars().fill_null("") != "" for c in (source, *items)])
        )
        parts.append(
            filled.with_columns(
                pl.lit(code).alias("instrument"),
                pl.col(source).alias("score"),
                *[pl.col(c).alias(f"item_{k}") for k, c in enumerate(items, start=1)],
                # One source row can give several records: the column keeps (file, row) unique.
                (pl.col(SOURCE_FILE) + f" [{source}]").alias(SOURCE_FILE),
            )
        )
    for code, items in record.item_columns.items():
        if code in record.instrument_columns.values():
            continue
        any_item = pl.any_horizontal([pl.col(c).str.strip_chars().fill_null("") != "" for c in items])
        parts.append(
            frame.filter(any_item).with_columns(
                pl.lit(code).alias("instrument"),
                pl.lit(None, dtype=pl.String).alias("score"),
                *[pl.col(c).alias(f"item_{k}") for k, c in enumerate(items, start=1)],
                (pl.col(SOURCE_FILE) + f" [{code} items]").alias(SOURCE_FILE),
            )
        )
    return pl.concat(parts, how="diagonal") if parts else frame.clear()


def mapped_column(sources: str | list[str]) -> pl.Expr:
    """Return a source column, or of several the first value of each row that is not empty (valueFloat, valueInt,
    valueString)."""
    if isinstance(sources, str):
        return pl.col(sources)
    return pl.coalesce([pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)) for c in sources])


def record_frame(table: pl.DataFrame, record: RecordMapping, source: SourceMapping, label: str) -> pl.DataFrame:
    """Return one file's rows as contract columns (text), keeping every original column for raw_record."""
    frame = table.with_columns(pl.lit(label).alias(SOURCE_FILE))
    for column, pattern in record.where.items():
        frame = frame.filter(
            pl.col(column)
            .fill_null("")
            .map_elements(lambda value, p=pattern: fnmatch.fnmatchcase(value, p), return_dtype=pl.Boolean)
        )
    originals = [c for c in table.columns if c not in BOOKKEEPING]
    mapped = [mapped_column(sources).alias(target) for target, sources in record.columns.items()]
    constants = [pl.lit(value).alias(target) for target, value in record.constants.items()]
    defaults = []
    if record.type == "patients":
        for column in ("clinic_id", "primary_indication"):
            default = getattr(source, column)
            if default is not None and column not in record.columns and column not in record.constants:
                defaults.append(pl.lit(default).alias(column))
    # Original columns keep their names under a prefix where a contract column takes the name.
    contract_names = set(CONTRACT_BY_TYPE[record.type].columns) | {f"item_{k}" for k in range(1, 100)}
    kept = [pl.col(c).alias(f"original_{c}" if c in contract_names else c) for c in originals]
    frame = frame.select(ROW_NUMBER, LINE_NUMBER, PARSE_ERROR, SOURCE_FILE, *kept, *mapped, *constants, *defaults)
    if record.type == "assessments" and (record.instrument_columns or record.item_columns):
        renamed = {c: (f"original_{c}" if c in contract_names else c) for c in originals}
        frame = long_assessments(
            frame,
            record.model_copy(
                update={
                    "instrument_columns": {renamed[k]: v for k, v in record.instrument_columns.items()},
                    "item_columns": {k: [renamed[c] for c in v] for k, v in record.item_columns.items()},
                }
            ),
        )
    replacements = dict(record.values)
    if record.instrument_aliases:
        replacements["instrument"] = {**replacements.get("instrument", {}), **record.instrument_aliases}
    frame = frame.with_columns(
        [pl.col(target).replace(mapping) for target, mapping in replacements.items() if target in frame.columns]
    )
    frame = frame.with_columns(
        [timestamp_text(c, record, source.timezone).alias(c) for c in TIMESTAMP_COLUMNS if c in frame.columns]
    )
    return frame


def date_format_problems(
    mapping_file: str, index: int, record: RecordMapping, table: pl.DataFrame, label: str
) -> list[str]:
    """Return a problem for each timestamp column whose filled values the date format fits none of."""
    if record.date_format is None:
        return []
    problems = []
    for target in TIMESTAMP_COLUMNS:
        source_column = record.columns.get(target)
        if not isinstance(source_column, str) or source_column not in table.columns:
            continue  # unmapped, or several columns (judged when read: a value no format fits is quarantined)
        values = table.get_column(source_column).drop_nulls().str.strip_chars()
        values = values.filter(values != "")
        if values.is_empty():
            continue
        parsed = values.str.strptime(pl.Datetime("us"), record.date_format, strict=False)
        # True date cells read as ISO text and fit whatever the format says: only text cells judge it.
        text_cells = parsed.is_null() & values.to_frame().select(spreadsheet_date(pl.first()).is_null()).to_series()
        if text_cells.all():
            problems.append(
                f"{mapping_file}: records[{index}].date_format: '{record.date_format}' fits none of the "
                f"values of '{source_column}' in {label} (e.g. '{values[0]}')"
            )
    return problems


def mapped_frames(
    inbox: Path, mapping_file: str, source: SourceMapping, instruments: set[str]
) -> dict[str, pl.DataFrame]:
    """Return the raw tables a CSV or Excel source gives, per record type; raise MappingError for any mistake."""
    frames: dict[str, list[pl.DataFrame]] = {}
    for index, record in enumerate(source.records):
        files = matching_files(inbox, record.files)
        if not files:
            raise MappingError(f"{mapping_file}: records[{index}].files: no file in {inbox} matches '{record.files}'")
        for path in files:
            label = str(path.relative_to(inbox))
            table = read_table(path, source.format, record.sheet, label)
            if source.format == "xlsx":
                # Rows are named by the sheet as well as the workbook: "exports/visits.xlsx sheet Visits".
                label = f"{label} sheet {record.sheet or first_sheet_name(path)}"
            header = [c for c in table.columns if c not in BOOKKEEPING]
            problems = check_record_mapping(
                mapping_file,
                index,
                record,
                label,
                header,
                instruments,
                {c for c in ("clinic_id", "primary_indication") if getattr(source, c)},
            )
            problems += date_format_problems(mapping_file, index, record, table, label)
            if problems:
                raise MappingError("; ".join(problems))
            frame = record_frame(table, record, source, label)
            frames.setdefault(record.type, []).append(contract_frame(frame, CONTRACT_BY_TYPE[record.type], label))
    return {record_type: pl.concat(parts, how="diagonal_relaxed") for record_type, parts in frames.items()}
