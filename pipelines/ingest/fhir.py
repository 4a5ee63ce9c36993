"""Read FHIR R4 Bundles (*.json) and bulk-export files (*.ndjson) into raw tables of the inbox contract.

Patient -> patient; Condition -> the patient's indication (SNOMED CT or
ICD-10-CM codes below); Observation with a LOINC code of the instrument
registry -> assessment; QuestionnaireResponse of PHQ-9 or GAD-7 -> assessment
scored from its items; MedicationAdministration or Procedure of ketamine
(RxNorm 6130, or the word in its text) -> infusion. Other resources are counted
by type and skipped. A mapped resource that is invalid (no value, no time) still
becomes a row, so that validation quarantines it naming the file and the entry.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl

from pipelines.ingest.contract import ASSESSMENTS, INFUSIONS, PARSE_ERROR, PATIENTS, ROW_NUMBER, SOURCE_FILE
from pipelines.ingest.csv_inbox import InboxError, contract_frame
from pipelines.ingest.mapping import SourceMapping

KETAMINE_RXNORM = "6130"
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
        if "snomed" in system and code in INDICATION_CODES["snomed"]:
            return INDICATION_CODES["snomed"][code]
        if "icd-10" in system.lower() or "icd10" in system.lower():
            for prefix, indication in INDICATION_CODES["icd10"].items():
                if code.startswith(prefix):
                    return indication
    return None


def is_ketamine(resource: dict) -> bool:
    concept = resource.get("medicationCodeableConcept") or resource.get("code") or {}
    if any(c.get("code") == KETAMINE_RXNORM for c in codings(concept)):
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
    inbox: Path, source: SourceMapping, loinc_instruments: dict[str, str]
) -> tuple[dict[str, pl.DataFrame], Counter]:
    """Return the raw tables of a FHIR source per record type, and the skipped resources counted by type."""
    rows: dict[str, list[dict]] = {"patients": [], "infusions": [], "assessments": []}
    indications: dict[str, str] = {}
    skipped: Counter = Counter()
    paths = sorted(p for p in inbox.glob(source.files or "**/*.json") if p.is_file())
    for path in paths:
        label = str(path.relative_to(inbox))
        for number, resource in resources_of(path, label):
            kind = resource.get("resourceType", "unknown")
            base = {SOURCE_FILE: label, ROW_NUMBER: number, PARSE_ERROR: None}
            if kind == "Patient":
                gender = {"male": "M", "female": "F"}.get(resource.get("gender", ""), resource.get("gender"))
                organisation = resource.get("managingOrganization") or {}
                rows["patients"].append(
                    {
                        **base,
                        "patient_id": resource.get("id"),
                        "clinic_id": organisation.get("display") or reference_id(organisation) or source.clinic_id,
                        "birth_year": (resource.get("birthDate") or "")[:4] or None,
                        "sex": gender,
                    }
                )
            elif kind == "Condition" and indication_of(resource):
                indications.setdefault(reference_id(resource.get("subject")), indication_of(resource))
            elif kind == "Observation" and any(
                c.get("code") in loinc_instruments for c in codings(resource.get("code"))
            ):
                code = next(c["code"] for c in codings(resource.get("code")) if c.get("code") in loinc_instruments)
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
    for patient in rows["patients"]:
        patient["primary_indication"] = indications.get(patient["patient_id"], source.primary_indication)
    contracts = {"patients": PATIENTS, "infusions": INFUSIONS, "assessments": ASSESSMENTS}
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
