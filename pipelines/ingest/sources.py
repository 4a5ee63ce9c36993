"""The inbox's sources: the contract CSVs, one per mapping file, and FHIR files no mapping claims, each read into
raw frames per record type."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.ingest.contract import CONTRACTS
from pipelines.ingest.csv_inbox import InboxError, raw_frame_from_file
from pipelines.ingest.fhir import fhir_frames, fhir_paths
from pipelines.ingest.mapped import mapped_frames, matching_files
from pipelines.ingest.mapping import MappingError, SourceMapping, load_mapping, mapping_files
from pipelines.sql_models import SQL_DIR

CSV_SOURCE = "inbox_csv"
# FHIR bundles or bulk files dropped into the inbox with no mapping: read with the defaults (clinics from the
# resources themselves). A mapping named like it takes its place.
FHIR_SOURCE = "fhir"


def unmapped_fhir_files(inbox: Path) -> list[Path]:
    """Return the inbox's FHIR files (*.json, *.ndjson) that no FHIR mapping reads, outside sources/."""
    claimed: set[Path] = set()
    for path in mapping_files(inbox):
        if path.stem == FHIR_SOURCE:
            return []
        try:
            mapping = load_mapping(path)
        except MappingError:
            continue  # reported when that source is read
        if mapping.format == "fhir":
            claimed |= set(fhir_paths(inbox, mapping))
    return [
        path
        for path in fhir_paths(inbox, SourceMapping(name=FHIR_SOURCE, format="fhir"))
        if path not in claimed and path.relative_to(inbox).parts[0] != "sources"
    ]


def source_names(inbox: Path) -> list[str]:
    """Return the sources of an inbox: the contract CSVs, one per mapping file (by file stem), and "fhir" for
    FHIR files no mapping reads."""
    implicit = [FHIR_SOURCE] if unmapped_fhir_files(inbox) else []
    return [CSV_SOURCE, *[path.stem for path in mapping_files(inbox)], *implicit]


def has_other_sources(inbox: Path) -> bool:
    """Whether the inbox has a source besides the contract CSVs (then those are not required)."""
    return len(source_names(inbox)) > 1


def csv_frames(inbox: Path) -> dict[str, pl.DataFrame]:
    """Return the contract CSVs' raw tables read whole; the required ones must be there unless the inbox has
    other sources."""
    frames = {}
    others = has_other_sources(inbox)
    for contract in CONTRACTS:
        path = inbox / contract.file_name
        if path.is_file():
            frames[contract.record_type] = raw_frame_from_file(path, contract, contract.file_name)
        elif contract.is_required_file and not others:
            raise InboxError(f"{contract.file_name}: not found in the inbox {inbox}")
    return frames


def registry() -> tuple[set[str], dict[str, str]]:
    """Return the instrument codes and LOINC -> code from sql/seeds/instruments.csv."""
    seeds = pl.read_csv(SQL_DIR / "seeds" / "instruments.csv", infer_schema=False)
    loinc = {row["loinc"]: row["instrument"] for row in seeds.iter_rows(named=True) if row["loinc"]}
    return set(seeds["instrument"]), loinc


def mapping_of(folder: Path, name: str) -> tuple[Path | None, SourceMapping]:
    """Return a source's mapping file (None for the unmapped FHIR files) and its mapping."""
    if name == FHIR_SOURCE and not any(p.stem == FHIR_SOURCE for p in mapping_files(folder)):
        return None, SourceMapping(name=FHIR_SOURCE, format="fhir")
    path = next(p for p in mapping_files(folder) if p.stem == name)
    return path, load_mapping(path)


def frames_of_source(folder: Path, name: str) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Return one source's raw tables per record type and, for FHIR, the skipped resources by type."""
    if name == CSV_SOURCE:
        return csv_frames(folder), {}
    path, mapping = mapping_of(folder, name)
    instruments, loinc = registry()
    if mapping.format == "fhir":
        paths = unmapped_fhir_files(folder) if path is None else fhir_paths(folder, mapping)
        frames, skipped = fhir_frames(folder, mapping, loinc, paths)
        return frames, dict(skipped)
    return mapped_frames(folder, path.name, mapping, instruments), {}


def source_paths(folder: Path, name: str) -> list[Path]:
    """Return the files a source reads: the contract CSVs present, or the mapping file and the files it matches."""
    if name == CSV_SOURCE:
        return [folder / c.file_name for c in CONTRACTS if (folder / c.file_name).is_file()]
    path, mapping = mapping_of(folder, name)
    if path is None:
        return unmapped_fhir_files(folder)
    if mapping.format == "fhir":
        data = fhir_paths(folder, mapping)
    else:
        data = sorted({p for record in mapping.records for p in matching_files(folder, record.files)})
    return [path, *data]
