"""The inbox's sources: the contract CSVs and one per mapping file, each read into raw frames per record type."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.ingest.contract import CONTRACTS
from pipelines.ingest.csv_inbox import InboxError, raw_frame_from_file
from pipelines.ingest.fhir import fhir_frames
from pipelines.ingest.mapped import mapped_frames, matching_files
from pipelines.ingest.mapping import load_mapping, mapping_files
from pipelines.sql_models import SQL_DIR

CSV_SOURCE = "inbox_csv"


def source_names(inbox: Path) -> list[str]:
    """Return the sources of an inbox: the contract CSVs and one per mapping file (by file stem)."""
    return [CSV_SOURCE, *[path.stem for path in mapping_files(inbox)]]


def csv_frames(inbox: Path) -> dict[str, pl.DataFrame]:
    """Return the contract CSVs' raw tables read whole; the required ones must be there unless the inbox has
    mappings."""
    frames = {}
    has_mappings = bool(mapping_files(inbox))
    for contract in CONTRACTS:
        path = inbox / contract.file_name
        if path.is_file():
            frames[contract.record_type] = raw_frame_from_file(path, contract, contract.file_name)
        elif contract.is_required_file and not has_mappings:
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
