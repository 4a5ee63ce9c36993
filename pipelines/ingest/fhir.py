"""Read FHIR R4 Bundles (*.json) and bulk-export files (*.ndjson) into raw tables of the inbox contract.

Patient -> patient, at the clinic of its managingOrganization, else the
serviceProvider of most of its Encounters (spec §10.1: the organisation, with
its name, becomes a clinics row too); Condition -> the patient's indication
(SNOMED CT or ICD-10-CM codes below); Observation with a LOINC code of the
instrument registry -> assessment; QuestionnaireResponse of PHQ-9 or GAD-7 ->
assessment scored from its items; MedicationAdministration or Procedure of
ketamine (RxNorm 6130, or the word in its text) -> infusion. A code counts only
in its own coding system (a 6130 that is not RxNorm is not ketamine). Other
resources are counted by type and skipped. A mapped resource that is invalid
(no value, no time) still becomes a row, so that validation quarantines it
naming the file and the entry.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl

from pipelines.ingest.contract import (
    ASSESSMENTS,
    CLINICS,
    INFUSIONS,
    PARSE_ERROR,
    PATIENTS,
    ROW_NUMBER,
    SOURCE_FILE,
)
from pipelines.ingest.csv_inbox import InboxError, contract_frame
from pipelines.ingest.mapping import SourceMapping

KETAMINE_RXNORM = "6130"
# The coding systems whose codes are read, by their FHIR URIs.
LOINC = "http://loinc.org"
SNOMED_CT = "http://snomed.info/sct"
ICD_10_CM = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# Condition codes -> primary_indication; ICD-10-CM codes match by prefix.
INDICATION_CODES = {
    "snomed": {
        "35489007": "depression",
        "370143000": "depression",
        "36923009": "depression",
        "268621008": "depression",
        "47505003": "ptsd",
        "197480006": "anxiety",
        "21897009": "anxiety",
        "191627008": "bipolar_depression",
        "13746004": "bipolar_depression",
        "128200000": "crps",
        "44913000": "crps",
        "203082005": "fibromyalgia",
        "247398009": "neuropathic_pain",
        "37796009": "migraine",
    },
    "icd10": {
        "F32": "depression",
        "F33": "depression",
        "F43.1": "ptsd",
        "F41": "anxiety",
        "F31.3": "bipolar_depression",
        "F31.4": "bipolar_depression",
        "F31.5": "bipolar_depression",
        "G90.5": "crps",
        "M79.7": "fibromyalgia",
        "G62": "neuropathic_pain",
        "G57": "neuropathic_pain",
        "G43": "migraine",
    },
}
QUESTIONNAIRE_INSTRUMENTS = {
    "44249-1": "phq9",
    "69737-5": "gad7",
    "phq-9": "phq9",
    "phq9": "phq9",
    "gad-7": "gad7",
    "gad7": "gad7",
}


def resources_of(path: Path, label: str) -> list[tuple[int, dict]]:
    """Return (1-based entry or line number, resource) for a Bundle or an NDJSON file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix == ".ndjson":
            return [(n, json.loads(line)) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InboxError(f"{label}: cannot be read as FHIR JSON ({error})") from None
    if document.get("resourceType") == "Bundle":
        return [(n, entry.get("resource", {})) for n, entry in enumerate(document.get("entry", []), start=1)]
    return [(1, document)]


def reference_id(reference: dict | None) -> str | None:
    """Return the id in 'Patient/<id>' or 'urn:uuid:<id>'."""
    text = (reference or {}).get("reference")
    return text.rsplit("/", 1)[-1].removeprefix("urn:uuid:") if text else None


def codings(concept: dict | None) -> list[dict]:
    return (concept or {}).get("coding", [])


def indication_of(condition: dict) -> str | None:
    for coding in codings(condition.get("code")):
        system, code = coding.get("system", ""), coding.get("code", "")
        if system == SNOMED_CT and code in INDICATION_CODES["snomed"]:
            return INDICATION_CODES["snomed"][code]
        if system in ICD_10_CM:
            for prefix, indication in INDICATION_CODES["icd10"].items():
                if code.startswith(prefix):
                    return indication
    return None


def loinc_code(concept: dict | None, loinc_instruments: dict[str, str]) -> str | None:
    """Return the first LOINC code of a concept that the instrument registry knows (LOINC codings only)."""
    return next(
        (c["code"] for c in codings(concept) if c.get("system") == LOINC and c.get("code") in loinc_instruments),
        None,
    )


def organisation(reference: dict | None) -> tuple[str, str | None] | None:
    """Return (clinic_id, clinic_name) of an Organization reference: its id (Organization/<id>, or the value of
    an identifier search such as Organization?identifier=<system>|<value>), else its display; named by display."""
    if not reference:
        return None
    text, display = reference.get("reference") or "", reference.get("display")
    by_identifier = text.split("identifier=", 1)[1].rsplit("|", 1)[-1] if "identifier=" in text else None
    clinic = by_identifier or reference_id(reference) or display
    return (clinic, display) if clinic else None


def fhir_paths(inbox: Path, source: SourceMapping) -> list[Path]:
    """Return the files a FHIR source reads: its files glob, else every *.json and *.ndjson of the inbox."""
    patterns = [source.files] if source.files else ["**/*.json", "**/*.ndjson"]
    return sorted({p for pattern in patterns for p in inbox.glob(pattern) if p.is_file()})


def is_ketamine(resource: dict) -> bool:
    concept = resource.get("medicationCodeableConcept") or resource.get("code") or {}
    if any(c.get("code") == KETAMINE_RXNORM and c.get("system") == RXNORM for c in codings(concept)):
        return True
    texts = [concept.get("text", "")] + [c.get("display", "") for c in codings(concept)]
    return any("ketamine" in text.lower() for text in texts)


def when(resource: dict, *fields: str) -> str | None:
    for field in fields:
        value = resource.get(field)
        if isinstance(value, dict):
            value = value.get("start")
        if value:
            return value
    return None


def number_text(value) -> str | None:
    return None if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


def fhir_frames(
    inbox: Path, source: SourceMapping, loinc_instruments: dict[str, str], paths: list[Path] | None = None
) -> tuple[dict[str, pl.DataFrame], Counter]:
    """Return the raw tables of a FHIR source per record type, and the skipped resources counted by type.

    paths: the files to read (default: those of the source's files glob).
    """
    rows: dict[str, list[dict]] = {"clinics": [], "patients": [], "infusions": [], "assessments": []}
    indications: dict[str, str] = {}
    # Each patient's encounters' service providers, counted, with the first time seen (for ties).
    providers: dict[str, Counter] = {}
    skipped: Counter = Counter()
    for path in fhir_paths(inbox, source) if paths is None else paths:
        label = str(path.relative_to(inbox))
        for number, resource in resources_of(path, label):
            kind = resource.get("resourceType", "unknown")
            base = {SOURCE_FILE: label, ROW_NUMBER: number, PARSE_ERROR: None}
            if kind == "Patient":
                gender = {"male": "M", "female": "F"}.get(resource.get("gender", ""), resource.get("gender"))
                managing = organisation(resource.get("managingOrganization"))
                rows["patients"].append(
                    {
                        **base,
                        "patient_id": resource.get("id"),
                        "_organisation": managing,
                        "birth_year": (resource.get("birthDate") or "")[:4] or None,
                        "sex": gender,
                    }
                )
            elif kind == "Encounter" and organisation(resource.get("serviceProvider")):
                patient = reference_id(resource.get("subject"))
                providers.setdefault(patient, Counter())[organisation(resource.get("serviceProvider"))] += 1
            elif kind == "Condition" and indication_of(resource):
                indications.setdefault(reference_id(resource.get("subject")), indication_of(resource))
            elif kind == "Observation" and loinc_code(resource.get("code"), loinc_instruments):
                code = loinc_code(resource.get("code"), loinc_instruments)
                value = (resource.get("valueQuantity") or {}).get("value", resource.get("valueInteger"))
                rows["assessments"].append(
                    {
                        **base,
                        "patient_id": reference_id(resource.get("subject")),
                        "instrument": loinc_instruments[code],
                        "administered_at": when(resource, "effectiveDateTime", "effectivePeriod", "issued"),
                        "score": number_text(value),
                    }
                )
            elif kind == "QuestionnaireResponse" and questionnaire_instrument(resource):
                items = [number_text(answer_value(item)) for item in resource.get("item", [])]
                rows["assessments"].append(
                    {
                        **base,
                        "patient_id": reference_id(resource.get("subject")),
                        "instrument": questionnaire_instrument(resource),
                        "administered_at": resource.get("authored"),
                        "score": None,
                        **{f"item_{k}": v for k, v in enumerate(items, start=1)},
                    }
                )
            elif kind in ("MedicationAdministration", "Procedure") and is_ketamine(resource):
                dose = (resource.get("dosage") or {}).get("dose") or {}
                per_kg = dose.get("value") if "kg" in (dose.get("unit") or dose.get("code") or "") else None
                rows["infusions"].append(
                    {
                        **base,
                        "patient_id": reference_id(resource.get("subject")),
                        "infused_at": when(
                            resource, "effectiveDateTime", "effectivePeriod", "performedDateTime", "performedPeriod"
                        ),
                        "dose_mg_per_kg": number_text(per_kg),
                    }
                )
            else:
                skipped[kind] += 1
    # Each clinic once, from the entry of the first patient it was found for: (file, entry, name).
    clinics: dict[str, tuple[str, int, str | None]] = {}
    for patient in rows["patients"]:
        patient["primary_indication"] = indications.get(patient["patient_id"], source.primary_indication)
        # The managing organisation, else the provider of most of the patient's encounters (Counter keeps the
        # order first seen: a tie goes to the earliest), else the mapping's default.
        seen = providers.get(patient["patient_id"])
        clinic = patient.pop("_organisation") or (seen.most_common(1)[0][0] if seen else None)
        patient["clinic_id"] = clinic[0] if clinic else source.clinic_id
        if clinic:
            clinics.setdefault(clinic[0], (patient[SOURCE_FILE], patient[ROW_NUMBER], clinic[1]))
    rows["clinics"] = [
        {SOURCE_FILE: file, ROW_NUMBER: number, PARSE_ERROR: None, "clinic_id": clinic, "clinic_name": name}
        for clinic, (file, number, name) in clinics.items()
    ]
    contracts = {"clinics": CLINICS, "patients": PATIENTS, "infusions": INFUSIONS, "assessments": ASSESSMENTS}
    frames = {}
    for record_type, records in rows.items():
        if records:
            frame = pl.DataFrame(records, infer_schema_length=None).with_columns(
                pl.all().exclude(ROW_NUMBER).cast(pl.String), pl.col(ROW_NUMBER).cast(pl.Int64)
            )
            frames[record_type] = contract_frame(frame, contracts[record_type], "fhir")
    return frames, skipped


def questionnaire_instrument(resource: dict) -> str | None:
    questionnaire = (resource.get("questionnaire") or "").lower()
    for key, instrument in QUESTIONNAIRE_INSTRUMENTS.items():
        if key in questionnaire:
            return instrument
    return None


def answer_value(item: dict):
    answers = item.get("answer") or [{}]
    answer = answers[0]
    if "valueInteger" in answer or "valueDecimal" in answer:
        return answer.get("valueInteger", answer.get("valueDecimal"))
    coding = answer.get("valueCoding") or {}
    for extension in coding.get("extension", []):
        if "ordinalValue" in extension.get("url", "") or "itemWeight" in extension.get("url", ""):
            return extension.get("valueDecimal")
    return coding.get("code")


def missing_defaults(frames: dict[str, pl.DataFrame], source_name: str, mapping_file: str | None) -> list[str]:
    """Return what a FHIR source's patients lack that a mapping's default would give, in words for the operator."""
    patients = frames.get("patients")
    if patients is None:
        return []
    where = mapping_file or f"a mapping sources/{source_name}.yaml (name: {source_name}, format: fhir)"
    found = []
    for column, why in (
        ("clinic_id", "no managingOrganization and no Encounter with a serviceProvider"),
        ("primary_indication", "no Condition with a SNOMED CT or ICD-10-CM code of an indication"),
    ):
        count = patients[column].null_count()
        if count:
            found.append(f"{count} of {patients.height} patients have {why}: give {column}: <default> in {where}")
    return found
