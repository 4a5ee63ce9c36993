"""Source mappings: how one clinic's export becomes the inbox contract, declared in YAML, not code.

A mapping file lives in the inbox's `sources/` folder. Every mistake is
reported with the mapping file, the key and the data file it was checked
against, before anything is read into the warehouse.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.ingest.contract import CONTRACT_BY_TYPE, RecordContract

TIMESTAMP_COLUMNS = ("infused_at", "administered_at")


class MappingError(Exception):
    """A mapping that cannot be used: names the mapping file, the key and the data file."""


class RecordMapping(BaseModel):
    """How the rows of some files become one record type."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["clinics", "patients", "infusions", "assessments"]
    files: str = Field(description="glob of data files, relative to the inbox")
    sheet: str | None = Field(default=None, description="Excel sheet name (default: the first)")
    where: dict[str, str] = Field(default_factory=dict, description="keep rows whose column matches a glob")
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="contract column: source column, or a list of them (the first non-empty value of each row)",
    )
    constants: dict[str, str] = Field(default_factory=dict, description="contract column: fixed value")
    values: dict[str, dict[str, str]] = Field(default_factory=dict, description="contract column: value renames")
    instrument_aliases: dict[str, str] = Field(default_factory=dict, description="source instrument name: code")
    instrument_columns: dict[str, str] = Field(
        default_factory=dict, description="wide scores: source column: instrument code (one record per filled cell)"
    )
    item_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="wide items: instrument code: its item columns in order"
    )
    date_format: str | None = Field(default=None, description="strptime format of dates (default ISO 8601)")

    @field_validator("date_format")
    @classmethod
    def date_format_is_usable(cls, value: str | None) -> str | None:
        if value is not None:
            if "%" not in value:
                raise ValueError(f"'{value}' has no strptime directive such as %m/%d/%Y")
            sample = datetime(2026, 1, 5, 9, 30)
            try:
                datetime.strptime(sample.strftime(value), value)
            except ValueError as error:
                raise ValueError(f"'{value}' is not a usable date format ({error})") from None
        return value


class SourceMapping(BaseModel):
    """One clinic export: its format, defaults and record mappings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="short name, used in asset keys")
    preset: str | None = Field(default=None, description="a ready-made mapping of pipelines/ingest/presets/")
    format: Literal["csv", "xlsx", "fhir"] = "csv"
    clinic_id: str | None = Field(default=None, description="clinic of patients that name none")
    primary_indication: str | None = Field(default=None, description="indication of patients that name none")
    timezone: str | None = Field(default=None, description="the clinic's timezone, for date-times without offset")
    records: list[RecordMapping] = Field(default_factory=list)
    files: str | None = Field(default=None, description="FHIR: glob of bundles (*.json) and bulk files (*.ndjson)")


PRESETS = Path(__file__).parent / "presets"


def presets() -> list[str]:
    """Return the names of the ready-made mappings."""
    return sorted(path.stem for path in PRESETS.glob("*.yaml"))


def with_preset(document: dict, file_name: str) -> dict:
    """Return a mapping document with its preset's keys filled in: the document's own keys win, and its `files`
    (for a CSV or Excel preset) replaces each preset record's."""
    name = document.get("preset")
    if name not in presets():
        raise MappingError(f"{file_name}: preset: '{name}' is not one of {', '.join(presets())}")
    preset = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    merged = {**preset, **{k: v for k, v in document.items() if k not in ("records", "files")}}
    merged["records"] = document.get("records") or preset.get("records", [])
    if document.get("files"):
        if merged.get("format") == "fhir":
            merged["files"] = document["files"]
        else:
            merged["records"] = [{**record, "files": document["files"]} for record in merged["records"]]
    return merged


def load_mapping(path: Path) -> SourceMapping:
    """Return the mapping in a YAML file, or raise MappingError naming the file and each bad key."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise MappingError(f"{path.name}: cannot be read as YAML ({error})") from None
    if isinstance(document, dict) and document.get("preset") is not None:
        document = with_preset(document, path.name)
    try:
        return SourceMapping.model_validate(document or {})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(top)'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise MappingError(f"{path.name}: {problems}") from None


def mapping_files(inbox: Path) -> list[Path]:
    """Return the mapping files of an inbox (sources/*.yaml, *.yml), sorted."""
    folder = Path(inbox) / "sources"
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []


def check_record_mapping(
    mapping_file: str,
    index: int,
    record: RecordMapping,
    data_file: str,
    header: list[str],
    instruments: set[str],
    defaults: set[str] = frozenset(),
) -> list[str]:
    """Return every mistake of one record mapping against one data file's header (empty when it fits)."""
    where = f"{mapping_file}: records[{index}]"
    contract: RecordContract = CONTRACT_BY_TYPE[record.type]
    problems = []
    known = set(contract.columns) | {f"item_{k}" for k in range(1, 100)}
    for target, sources in record.columns.items():
        if target not in known:
            problems.append(f"{where}.columns.{target}: not a column of the {record.type} contract")
        for source in [sources] if isinstance(sources, str) else sources:
            if source not in header:
                problems.append(f"{where}.columns.{target}: column '{source}' is not in {data_file}")
    for column in [*record.where, *record.instrument_columns, *(c for cs in record.item_columns.values() for c in cs)]:
        if column not in header:
            problems.append(f"{where}: column '{column}' is not in {data_file}")
    for code in [*record.instrument_aliases.values(), *record.instrument_columns.values(), *record.item_columns]:
        if code not in instruments:
            problems.append(f"{where}: instrument '{code}' is not in the instrument registry")
    provided = set(record.columns) | set(record.constants)
    if record.type == "assessments" and (record.instrument_columns or record.item_columns):
        provided |= {"instrument", "score"}
    if record.type == "patients":
        provided |= defaults  # the source's default clinic and indication
    for required in contract.required:
        if required not in provided:
            problems.append(f"{where}: required field '{required}' is mapped from no column of {data_file}")
    return problems
