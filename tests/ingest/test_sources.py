"""Ingest what clinics export: FHIR R4, REDCap, and mapped CSV and Excel, each checked against the source files."""

from __future__ import annotations

import csv
import json
import re
import shutil
import textwrap
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from tests.conftest import GOLDEN, Refresh, write_inbox

EXTERNAL = Path(__file__).resolve().parents[1] / "fixtures" / "external"
LOINC = {"44261-6": "phq9", "70274-6": "gad7", "72514-3": "nrs_pain"}


def mapping(inbox: Path, name: str, text: str) -> None:
    (inbox / "sources").mkdir(parents=True, exist_ok=True)
    (inbox / "sources" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(ZoneInfo("America/Chicago")).replace(tzinfo=None)


# FHIR -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthea(tmp_path_factory) -> Refresh:
    inbox = tmp_path_factory.mktemp("synthea") / "inbox"
    shutil.copytree(EXTERNAL / "synthea-fhir", inbox / "fhir")
    mapping(
        inbox,
        "synthea",
        """
        name: synthea
        format: fhir
        files: "fhir/*.json"
        clinic_id: synthea_general
        primary_indication: depression
    """,
    )
    refresh = Refresh(inbox.parent / "out")
    refresh.ok(inbox)
    return refresh


def observations_in_bundles() -> set[tuple]:
    """Return (patient, instrument, local time, value) of every PHQ-9, GAD-7 and pain Observation, read directly."""
    found = set()
    for path in (EXTERNAL / "synthea-fhir").glob("*.json"):
        for entry in json.loads(path.read_text())["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "Observation":
                continue
            codes = [c["code"] for c in resource["code"]["coding"] if c["code"] in LOINC]
            if codes:
                patient = resource["subject"]["reference"].removeprefix("urn:uuid:")
                found.add(
                    (
                        patient,
                        LOINC[codes[0]],
                        local(resource["effectiveDateTime"]),
                        float(resource["valueQuantity"]["value"]),
                    )
                )
    return found


def test_every_synthea_phq9_gad7_and_pain_observation_becomes_an_assessment(synthea):
    expected = observations_in_bundles()
    assert len(expected) == 43
    got = {
        (r["patient_id"], r["instrument"], r["administered_at"], r["score"])
        for r in synthea.rows("select * from staging.assessments")
    }
    assert got == expected


def test_synthea_patients_are_read_and_nothing_is_quarantined(synthea):
    patients = synthea.rows("select patient_id, clinic_id, birth_year, sex from staging.patients order by 1")
    assert [p["patient_id"] for p in patients] == sorted(
        path.stem.rsplit("_", 1)[1] for path in (EXTERNAL / "synthea-fhir").glob("*.json")
    )
    # Synthea's patients name no managing organisation: each is at the service provider of most of their
    # encounters (identified by its identifier's value), which becomes a clinic named by its display.
    expected = {}
    for path in (EXTERNAL / "synthea-fhir").glob("*.json"):
        resources = [entry["resource"] for entry in json.loads(path.read_text())["entry"]]
        providers = Counter(
            (r["serviceProvider"]["reference"].rsplit("|", 1)[1], r["serviceProvider"]["display"])
            for r in resources
            if r["resourceType"] == "Encounter"
        )
        expected[path.stem.rsplit("_", 1)[1]] = providers.most_common(1)[0][0]
    assert {p["patient_id"]: p["clinic_id"] for p in patients} == {k: v[0] for k, v in expected.items()}
    clinics = synthea.rows("select clinic_id, clinic_name from staging.clinics")
    assert {c["clinic_id"]: c["clinic_name"] for c in clinics} == dict(expected.values())
    assert synthea.rows("select count(*) as n from quarantine.rejected_rows") == [{"n": 0}]


def test_fhir_resources_that_map_but_are_invalid_are_quarantined_with_file_and_entry(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "fhir").mkdir(parents=True)
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "subject": {"reference": "Patient/p1"},
                    "effectiveDateTime": "2026-01-05T09:00:00-06:00",
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationAdministration",
                    "subject": {"reference": "Patient/p1"},
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}]
                    },
                    "effectiveDateTime": "2026-01-05T10:00:00-06:00",
                    "dosage": {"dose": {"value": 0.5, "unit": "mg/kg"}},
                }
            },
            {"resource": {"resourceType": "Encounter", "id": "e1"}},
        ],
    }
    (inbox / "fhir" / "bundle.json").write_text(json.dumps(bundle))
    mapping(
        inbox,
        "ehr",
        'name: ehr\nformat: fhir\nfiles: "fhir/*.json"\nclinic_id: austin\nprimary_indication: depression\n',
    )
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert refresh.rows("select source_file, row_number, reason from quarantine.rejected_rows") == [
        {"source_file": "fhir/bundle.json", "row_number": 2, "reason": "missing_field"}
    ]
    [infusion] = refresh.rows("select infused_at, dose_mg_per_kg from staging.infusions")
    assert infusion == {"infused_at": datetime(2026, 1, 5, 10, 0), "dose_mg_per_kg": 0.5}


def test_fhir_bulk_export_ndjson_reads_one_resource_per_line(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "bulk").mkdir(parents=True)
    (inbox / "bulk" / "Patient.ndjson").write_text(
        json.dumps(
            {
                "resourceType": "Patient",
                "id": "p9",
                "gender": "male",
                "birthDate": "1970-05-01",
                "managingOrganization": {"display": "denver"},
            }
        )
        + "\n"
    )
    observations = [
        {
            "resourceType": "Observation",
            "subject": {"reference": "Patient/p9"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
            "effectiveDateTime": f"2026-02-0{day}",
            "valueInteger": score,
        }
        for day, score in ((2, 8), (9, 4))
    ]
    (inbox / "bulk" / "Observation.ndjson").write_text("\n".join(json.dumps(o) for o in observations) + "\n")
    mapping(inbox, "bulk", 'name: bulk\nformat: fhir\nfiles: "bulk/*.ndjson"\nprimary_indication: crps\n')
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert refresh.rows("select patient_id, clinic_id, primary_indication, sex from staging.patients") == [
        {"patient_id": "p9", "clinic_id": "denver", "primary_indication": "crps", "sex": "M"}
    ]
    assert refresh.rows("select source_file, source_row_number, score from staging.assessments order by 2") == [
        {"source_file": "bulk/Observation.ndjson", "source_row_number": 1, "score": 8.0},
        {"source_file": "bulk/Observation.ndjson", "source_row_number": 2, "score": 4.0},
    ]


# REDCap -----------------------------------------------------------------------------------------------------


def redcap_patients_mapping(inbox: Path, birth_year_column: str) -> None:
    """Patients from the enrollment events of redcap_export.csv; REDCap codes sex 0 = female, 1 = male."""
    mapping(
        inbox,
        "redcap",
        f"""
        name: redcap
        clinic_id: research_unit
        primary_indication: depression
        records:
          - type: patients
            files: redcap_export.csv
            where: {{redcap_event_name: "enrollment_arm_*"}}
            columns: {{patient_id: study_id, sex: sex, birth_year: {birth_year_column}}}
            values: {{sex: {{"0": F, "1": M}}}}
    """,
    )


def test_the_shared_redcap_longitudinal_export_reads_through_a_mapping(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(EXTERNAL / "redcap" / "longitudinal_data.csv", inbox / "redcap_export.csv")
    redcap_patients_mapping(inbox, birth_year_column="dob")
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    assert "redcap: 3 patients" in result.output
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    # A full date of birth is not a year: kept, and quarantined with the field named, never silently cut.
    rejected = refresh.rows("select row_number, reason, detail, raw_record from quarantine.rejected_rows order by 1")
    assert [(r["row_number"], r["reason"]) for r in rejected] == [
        (1, "unparseable_number"),
        (7, "unparseable_number"),
        (13, "unparseable_number"),
    ]
    assert rejected[0]["detail"] == "birth_year = '1983-09-23' is not a number"
    assert json.loads(rejected[0]["raw_record"])["gym___0"] == "1"  # checkbox columns kept as sent


def test_redcap_patients_with_sex_coded_and_birth_year_given(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with open(EXTERNAL / "redcap" / "longitudinal_data.csv") as handle:
        rows = list(csv.DictReader(handle))
    with open(inbox / "redcap_export.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0].keys(), "birth_year"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "birth_year": row["dob"][:4]})
    redcap_patients_mapping(inbox, birth_year_column="birth_year")
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert refresh.rows("select patient_id, sex, birth_year from staging.patients order by 1") == [
        {"patient_id": "100", "sex": "M", "birth_year": 1983},
        {"patient_id": "220", "sex": "F", "birth_year": 2011},
        {"patient_id": "304", "sex": "F", "birth_year": 2005},
    ]


def test_a_redcap_export_with_phq9_items_per_event_is_scored_from_the_items(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    items = [f"phq9_{k}" for k in range(1, 10)]
    header = ["record_id", "redcap_event_name", "site", "inf_date", "phq9_date", *items, "phq9_complete"]
    events = [
        ("101", "baseline_arm_1", "austin", "", "2026-01-05", [3, 3, 2, 2, 2, 2, 2, 2, 0]),
        ("101", "infusion_1_arm_1", "", "2026-01-05", "", None),
        ("101", "infusion_2_arm_1", "", "2026-01-07", "2026-01-07", [2, 2, 1, 1, 1, 1, 1, 1, 0]),
        ("101", "infusion_3_arm_1", "", "2026-01-09", "", None),
        ("101", "follow_up_arm_1", "", "", "2026-01-16", [1, 1, 1, 1, 0, 0, 0, 0, 1]),
    ]
    with open(inbox / "redcap.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record, event, site, infused, scored, answers in events:
            writer.writerow([record, event, site, infused, scored, *(answers or [""] * 9), "2" if answers else ""])
    mapping(
        inbox,
        "redcap",
        f"""
        name: redcap
        primary_indication: depression
        records:
          - type: patients
            files: redcap.csv
            where: {{redcap_event_name: "baseline_arm_*"}}
            columns: {{patient_id: record_id, clinic_id: site}}
          - type: infusions
            files: redcap.csv
            where: {{redcap_event_name: "infusion_*"}}
            columns: {{patient_id: record_id, infused_at: inf_date}}
          - type: assessments
            files: redcap.csv
            where: {{phq9_complete: "2"}}
            columns: {{patient_id: record_id, administered_at: phq9_date}}
            item_columns: {{phq9: {json.dumps(items)}}}
    """,
    )
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    scores = refresh.rows("select administered_at, score, score_source, phq9_item9 from staging.assessments order by 1")
    assert [(s["score"], s["score_source"], s["phq9_item9"]) for s in scores] == [
        (18.0, "items", 0.0),
        (10.0, "items", 0.0),
        (5.0, "items", 1.0),
    ]
    [outcome] = refresh.rows("select * from marts.series_outcomes")
    assert (outcome["baseline_score"], outcome["end_score"], outcome["is_responder"]) == (18.0, 5.0, True)


# Mapped Excel and CSV against the canonical contract ---------------------------------------------------------

OUTCOME_COLUMNS = [
    "patient_id",
    "series_number",
    "instrument",
    "status",
    "baseline_score",
    "end_score",
    "end_pct_change",
    "best_score",
    "is_responder",
    "is_remitter",
    "first_response_at",
    "infusions_to_response",
    "relief_days",
    "relief_status",
    "booster_interval_days",
]


def canonical_outcomes(tmp_path: Path, inbox: Path) -> list[dict]:
    refresh = Refresh(tmp_path / f"canonical-{inbox.name}")
    refresh.ok(inbox)
    return refresh.rows(f"select {', '.join(OUTCOME_COLUMNS)} from marts.series_outcomes order by 1, 2, 3")


def us_stamp(text: str) -> str:
    moment = datetime.fromisoformat(text)
    return f"{moment.month}/{moment.day}/{moment.year} {moment.hour:02d}:{moment.minute:02d}"


def test_a_wide_excel_export_with_us_dates_gives_the_canonical_outcomes(tmp_path):
    basic = GOLDEN / "basic" / "inbox"
    patients = pl.read_csv(basic / "patients.csv", infer_schema=False)
    infusions = pl.read_csv(basic / "infusions.csv", infer_schema=False)
    assessments = pl.read_csv(basic / "assessments.csv", infer_schema=False)
    visits = assessments.pivot(on="instrument", index=["patient_id", "administered_at"], values="score").rename(
        {"phq9": "PHQ-9", "gad7": "GAD-7", "nrs_pain": "Pain (0-10)"}
    )
    inbox = tmp_path / "excel"
    inbox.mkdir()
    with pl.Config():
        import xlsxwriter

        workbook = xlsxwriter.Workbook(inbox / "clinic_export.xlsx")
        for sheet, frame in (
            (
                "Clients",
                patients.rename(
                    {"patient_id": "Client ID", "clinic_id": "Location", "primary_indication": "Diagnosis"}
                ),
            ),
            (
                "Infusions",
                infusions.with_columns(pl.col("infused_at").map_elements(us_stamp, return_dtype=pl.String)).rename(
                    {"patient_id": "Client ID", "infused_at": "Date"}
                ),
            ),
            (
                "Visits",
                visits.with_columns(pl.col("administered_at").map_elements(us_stamp, return_dtype=pl.String)).rename(
                    {"patient_id": "Client ID", "administered_at": "Visit"}
                ),
            ),
        ):
            frame.write_excel(workbook, worksheet=sheet)
        workbook.close()
    mapping(
        inbox,
        "spreadsheet",
        """
        name: spreadsheet
        format: xlsx
        records:
          - type: patients
            files: clinic_export.xlsx
            sheet: Clients
            columns: {patient_id: Client ID, clinic_id: Location, primary_indication: Diagnosis}
          - type: infusions
            files: clinic_export.xlsx
            sheet: Infusions
            columns: {patient_id: Client ID, infused_at: Date}
            date_format: "%m/%d/%Y %H:%M"
          - type: assessments
            files: clinic_export.xlsx
            sheet: Visits
            columns: {patient_id: Client ID, administered_at: Visit}
            instrument_columns: {PHQ-9: phq9, GAD-7: gad7, Pain (0-10): nrs_pain}
            date_format: "%m/%d/%Y %H:%M"
    """,
    )
    mapped = Refresh(tmp_path / "mapped")
    mapped.ok(inbox)
    assert mapped.rows(
        f"select {', '.join(OUTCOME_COLUMNS)} from marts.series_outcomes order by 1, 2, 3"
    ) == canonical_outcomes(tmp_path, basic)


PHQ9_QUESTIONS = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself",
    "Trouble concentrating on things",
    "Moving or speaking so slowly that other people could have noticed",
    "Thoughts that you would be better off dead, or of hurting yourself",
]


def items_for(total: int) -> list[int]:
    items = [0] * 9
    for k in range(total):
        items[k % 8] += 1
    return items


def test_a_csv_of_phq9_questions_by_their_text_gives_the_canonical_outcomes(tmp_path):
    basic = GOLDEN / "basic" / "inbox"
    phq9 = pl.read_csv(basic / "assessments.csv", infer_schema=False).filter(pl.col("instrument") == "phq9")
    canonical = write_inbox(
        tmp_path / "canonical", (basic / "patients.csv").read_text(), (basic / "infusions.csv").read_text(), ""
    )
    phq9.write_csv(canonical / "assessments.csv")

    inbox = write_inbox(
        tmp_path / "mapped",
        (basic / "patients.csv").read_text(),
        (basic / "infusions.csv").read_text(),
        "patient_id,instrument,administered_at,score\n",
    )
    with open(inbox / "phq9_survey.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_id", "date_submitted", *PHQ9_QUESTIONS, "PHQ9Total"])
        for row in phq9.iter_rows(named=True):
            total = int(row["score"])
            writer.writerow([row["patient_id"], us_stamp(row["administered_at"]), *items_for(total), total])
    questions = json.dumps(PHQ9_QUESTIONS)
    mapping(
        inbox,
        "survey",
        f"""
        name: survey
        records:
          - type: assessments
            files: phq9_survey.csv
            columns: {{patient_id: client_id, administered_at: date_submitted}}
            instrument_columns: {{PHQ9Total: phq9}}
            item_columns: {{phq9: {questions}}}
            date_format: "%m/%d/%Y %H:%M"
    """,
    )
    mapped = Refresh(tmp_path / "mapped-out")
    mapped.ok(inbox)
    assert mapped.rows(
        f"select {', '.join(OUTCOME_COLUMNS)} from marts.series_outcomes order by 1, 2, 3"
    ) == canonical_outcomes(tmp_path, canonical)


# Mapping mistakes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            "columns: {patient_id: client, administered_at: date_submitted, instrument: form, score: total}",
            "survey.yaml: records[0].columns.patient_id: column 'client' is not in phq9_survey.csv",
        ),
        (
            (
                "columns: {patient_id: client_id, administered_at: date_submitted}\n"
                "    instrument_columns: {PHQ9Total: phq10}"
            ),
            "survey.yaml: records[0]: instrument 'phq10' is not in the instrument registry",
        ),
        (
            (
                "columns: {patient_id: client_id, administered_at: date_submitted}\n"
                "    instrument_columns: {PHQ9Total: phq9}\n"
                "    date_format: 'month/day/year'"
            ),
            "survey.yaml: records.0.date_format",
        ),
        (
            (
                "columns: {patient_id: client_id, administered_at: date_submitted}\n"
                "    instrument_columns: {PHQ9Total: phq9}\n"
                "    date_format: '%d.%m.%Y'"
            ),
            (
                "survey.yaml: records[0].date_format: '%d.%m.%Y' fits none of the values of "
                "'date_submitted' in phq9_survey.csv (e.g. '1/5/2026')"
            ),
        ),
        (
            "columns: {patient_id: client_id}\n    instrument_columns: {PHQ9Total: phq9}",
            "survey.yaml: records[0]: required field 'administered_at' is mapped from no column of phq9_survey.csv",
        ),
    ],
)
def test_a_mapping_mistake_names_the_mapping_file_the_key_and_the_data_file(tmp_path, record, message):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "phq9_survey.csv").write_text("client_id,date_submitted,PHQ9Total\nP1,1/5/2026,20\n")
    mapping(
        inbox, "survey", f"name: survey\nrecords:\n  - type: assessments\n    files: phq9_survey.csv\n    {record}\n"
    )
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    assert result.exit_code == 1
    assert message in result.output


def test_true_date_cells_of_a_spreadsheet_read_as_dates_whatever_the_date_format_says():
    from pipelines.ingest.mapped import date_format_problems, timestamp_text
    from pipelines.ingest.mapping import RecordMapping

    record = RecordMapping(
        type="infusions",
        files="*.xlsx",
        columns={"patient_id": "id", "infused_at": "when"},
        date_format="%m/%d/%Y %H:%M",
    )
    # A text cell as the sheet shows it, and a true date cell as calamine reads it: the same moment.
    table = pl.DataFrame({"id": ["P1", "P2"], "when": ["02/21/2026 10:00", "2026-02-21 10:00:00"]})
    assert date_format_problems("visits.yaml", 0, record, table, "clinic.xlsx") == []
    text = table.select(timestamp_text("when", record, "America/Denver"))["when"].to_list()
    assert text == ["2026-02-21T10:00:00-07:00", "2026-02-21T10:00:00-07:00"]
    only_true_dates = pl.DataFrame({"id": ["P1"], "when": ["2026-02-21 10:00:00"]})
    assert date_format_problems("visits.yaml", 0, record, only_true_dates, "clinic.xlsx") == []
    wrong = pl.DataFrame({"id": ["P1"], "when": ["21.02.2026 10:00"]})
    expected = (
        "visits.yaml: records[0].date_format: '%m/%d/%Y %H:%M' fits none of the values of 'when' in clinic.xlsx "
        "(e.g. '21.02.2026 10:00')"
    )
    assert date_format_problems("visits.yaml", 0, record, wrong, "clinic.xlsx") == [expected]


def test_a_clinics_sheet_maps_through_the_clinics_record_type(tmp_path):
    # Spec §10.1: a site list exported by the EHR, its own column names, becomes staging.clinics.
    basic = GOLDEN / "basic" / "inbox"
    inbox = write_inbox(
        tmp_path / "inbox",
        (basic / "patients.csv").read_text(),
        (basic / "infusions.csv").read_text(),
        (basic / "assessments.csv").read_text(),
    )
    (inbox / "sites.csv").write_text("Site Code,Site Name,TZ\naustin,Austin Ketamine Center,America/Chicago\n")
    mapping(
        inbox,
        "sites",
        """
        name: sites
        records:
          - type: clinics
            files: sites.csv
            columns: {clinic_id: Site Code, clinic_name: Site Name, timezone: TZ}
    """,
    )
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert refresh.rows("select clinic_id, clinic_name, timezone, source_file from staging.clinics") == [
        {
            "clinic_id": "austin",
            "clinic_name": "Austin Ketamine Center",
            "timezone": "America/Chicago",
            "source_file": "sites.csv",
        }
    ]


def test_sources_check_names_each_problem_by_its_line_as_the_file_shows_it(tmp_path):
    # The shared bad-inputs inbox: its first bad assessment is data row 43, line 44 of the file (the header is 1).
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(GOLDEN / "bad_inputs" / "inbox")])
    assert result.exit_code == 0, result.output
    assert "  assessments.csv line 44 (data row 43) (assessment): score_out_of_range: score 31.0" in result.output


def test_sources_check_names_a_spreadsheets_sheet_and_the_row_the_spreadsheet_shows(tmp_path):
    import xlsxwriter

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    workbook = xlsxwriter.Workbook(inbox / "export.xlsx")
    sheet = workbook.add_worksheet("Visits")
    for row, values in enumerate(
        [("Client", "Date", "PHQ9Total"), ("P1", "2026-01-05", "20"), ("P1", "2026-01-19", "31")]
    ):
        sheet.write_row(row, 0, values)
    workbook.close()
    (inbox / "patients.csv").write_text("patient_id,clinic_id,primary_indication\nP1,c1,depression\n")
    mapping(
        inbox,
        "visits",
        """
        name: visits
        format: xlsx
        records:
          - type: assessments
            files: export.xlsx
            sheet: Visits
            columns: {patient_id: Client, administered_at: Date}
            instrument_columns: {PHQ9Total: phq9}
    """,
    )
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    # Spreadsheet row 3: the header is row 1, the bad score's row the second of data.
    assert "export.xlsx sheet Visits [PHQ9Total] line 3 (data row 2) (assessment): score_out_of_range" in (
        result.output
    )


def synthea_inbox_without_mapping(folder: Path, with_conditions: bool) -> Path:
    """Synthea's bundles dropped into an inbox as they come; with_conditions adds each patient's depression."""
    inbox = folder / "inbox"
    (inbox / "exports").mkdir(parents=True)
    for path in (EXTERNAL / "synthea-fhir").glob("*.json"):
        bundle = json.loads(path.read_text())
        patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        if with_conditions:
            condition = {
                "resourceType": "Condition",
                "subject": {"reference": f"urn:uuid:{patient}"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
            }
            bundle["entry"].append({"resource": condition})
        (inbox / "exports" / path.name).write_text(json.dumps(bundle))
    return inbox


def test_a_fhir_export_dropped_into_the_inbox_reads_without_a_mapping(tmp_path):
    inbox = synthea_inbox_without_mapping(tmp_path, with_conditions=True)
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    patients = refresh.rows("select patient_id, clinic_id, primary_indication from staging.patients")
    assert len(patients) == 3 and {p["primary_indication"] for p in patients} == {"depression"}
    assert all(p["clinic_id"] for p in patients)  # each at its encounters' service provider
    assert len(refresh.rows("select * from staging.assessments")) == 43
    assert refresh.rows("select count(*) as n from quarantine.rejected_rows") == [{"n": 0}]


def test_sources_check_says_which_default_a_fhir_export_without_a_mapping_lacks(tmp_path):
    inbox = synthea_inbox_without_mapping(tmp_path, with_conditions=False)
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    assert (
        "3 of 3 patients have no Condition with a SNOMED CT or ICD-10-CM code of an indication: give "
        "primary_indication: <default> in a mapping sources/fhir.yaml" in result.output
    )
    assert "clinic_id: <default>" not in result.output  # the clinics come from the encounters


def test_fhir_codes_count_only_in_their_own_coding_system(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def entry(resource: dict) -> dict:
        return {"resource": resource}

    subject = {"reference": "Patient/p1"}
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            entry({"resourceType": "Patient", "id": "p1", "managingOrganization": {"display": "austin"}}),
            entry(
                {
                    "resourceType": "Condition",
                    "subject": subject,
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
                }
            ),
            # A PHQ-9 LOINC code in LOINC: read. The same code in a local system: not a PHQ-9.
            entry(
                {
                    "resourceType": "Observation",
                    "subject": subject,
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "effectiveDateTime": "2026-01-05T09:00:00-06:00",
                    "valueQuantity": {"value": 20},
                }
            ),
            entry(
                {
                    "resourceType": "Observation",
                    "subject": subject,
                    "code": {"coding": [{"system": "http://example.org/local-codes", "code": "44261-6"}]},
                    "effectiveDateTime": "2026-01-06T09:00:00-06:00",
                    "valueQuantity": {"value": 3},
                }
            ),
            # RxNorm 6130 is ketamine; 6130 in another system is not.
            entry(
                {
                    "resourceType": "MedicationAdministration",
                    "subject": subject,
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}]
                    },
                    "effectiveDateTime": "2026-01-05T10:00:00-06:00",
                }
            ),
            entry(
                {
                    "resourceType": "MedicationAdministration",
                    "subject": subject,
                    "medicationCodeableConcept": {"coding": [{"system": "http://example.org/drugs", "code": "6130"}]},
                    "effectiveDateTime": "2026-01-07T10:00:00-06:00",
                }
            ),
        ],
    }
    (inbox / "bundle.json").write_text(json.dumps(bundle))
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert [r["score"] for r in refresh.rows("select score from staging.assessments")] == [20.0]
    assert len(refresh.rows("select * from staging.infusions")) == 1


# Presets ------------------------------------------------------------------------------------------------------

REGISTRY_LOINC = {"phq9": "44261-6", "gad7": "70274-6", "nrs_pain": "72514-3"}


def test_the_mirah_observations_preset_reads_an_external_observations_export(tmp_path):
    # Built from the column list of Mirah's flat-file "External Observations" (observations_<timestamp>.csv):
    # identifiers, subjectId, effectiveDate, code (LOINC or Mirah's code), valueFloat / valueInt / valueString.
    # Each golden assessment becomes an observation, its value in one of the three value columns.
    basic = GOLDEN / "basic" / "inbox"
    assessments = pl.read_csv(basic / "assessments.csv", infer_schema=False)
    inbox = write_inbox(
        tmp_path / "mirah", (basic / "patients.csv").read_text(), (basic / "infusions.csv").read_text(), ""
    )
    (inbox / "assessments.csv").write_text("patient_id,instrument,administered_at,score\n")
    with open(inbox / "observations_20261101T020000.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["identifiers", "subjectId", "effectiveDate", "code", "valueFloat", "valueInt", "valueString"])
        for number, row in enumerate(assessments.iter_rows(named=True)):
            code = REGISTRY_LOINC[row["instrument"]] if number % 2 else row["instrument"].upper().replace("9", "-9")
            value = ["", "", ""]
            value[number % 3] = row["score"]
            writer.writerow([f"MRN|{row['patient_id']}", row["patient_id"], row["administered_at"], code, *value])
    mapping(inbox, "mirah", "name: mirah\npreset: mirah_observations\n")
    mapped = Refresh(tmp_path / "mapped-out")
    mapped.ok(inbox)
    assert mapped.rows("select count(*) as n from quarantine.rejected_rows") == [{"n": 0}]
    assert mapped.rows(
        f"select {', '.join(OUTCOME_COLUMNS)} from marts.series_outcomes order by 1, 2, 3"
    ) == canonical_outcomes(tmp_path, basic)


def test_the_survey_preset_reads_a_phq9_form_export_with_the_standard_question_texts(tmp_path):
    import yaml

    from pipelines.ingest.mapping import PRESETS

    questions = yaml.safe_load((PRESETS / "survey_phq9.yaml").read_text())["records"][0]["item_columns"]["phq9"]
    basic = GOLDEN / "basic" / "inbox"
    phq9 = pl.read_csv(basic / "assessments.csv", infer_schema=False).filter(pl.col("instrument") == "phq9")
    canonical = write_inbox(
        tmp_path / "canonical", (basic / "patients.csv").read_text(), (basic / "infusions.csv").read_text(), ""
    )
    phq9.write_csv(canonical / "assessments.csv")
    inbox = write_inbox(
        tmp_path / "mapped",
        (basic / "patients.csv").read_text(),
        (basic / "infusions.csv").read_text(),
        "patient_id,instrument,administered_at,score\n",
    )
    with open(inbox / "phq9_survey_2026-11.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_id", "date_submitted", *questions, "PHQ9Total"])
        for number, row in enumerate(phq9.iter_rows(named=True)):
            total = int(row["score"])
            # Every other form leaves the total empty: it is summed from the items.
            writer.writerow(
                [row["patient_id"], us_stamp(row["administered_at"]), *items_for(total), total if number % 2 else ""]
            )
    mapping(inbox, "survey", "name: survey\npreset: survey_phq9\n")
    mapped = Refresh(tmp_path / "mapped-out")
    mapped.ok(inbox)
    assert mapped.rows(
        f"select {', '.join(OUTCOME_COLUMNS)} from marts.series_outcomes order by 1, 2, 3"
    ) == canonical_outcomes(tmp_path, canonical)


def test_an_unknown_preset_is_named_with_the_ones_there_are(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    mapping(inbox, "x", "name: x\npreset: epic_clarity\n")
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    assert "x.yaml: preset: 'epic_clarity' is not one of mirah_observations, survey_phq9" in result.output


# The README's mappings, as written --------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_mappings() -> dict[str, str]:
    """Return each YAML block of the README by the mapping file its first line names (sources/<name>.yaml)."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    return {re.search(r"sources/(\w+)\.yaml", block).group(1): block for block in blocks}


def test_every_mapping_in_the_readme_is_valid_as_written(tmp_path):
    from pipelines.ingest.mapping import load_mapping

    mappings = readme_mappings()
    assert {"lakeside", "mirah", "survey"} <= mappings.keys()
    for name, text in mappings.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        assert load_mapping(path).name == name


def test_the_readmes_excel_onboarding_example_reads_a_workbook_shaped_like_it(tmp_path):
    import xlsxwriter

    basic = GOLDEN / "basic" / "inbox"
    patients = pl.read_csv(basic / "patients.csv", infer_schema=False)
    infusions = pl.read_csv(basic / "infusions.csv", infer_schema=False)
    assessments = pl.read_csv(basic / "assessments.csv", infer_schema=False)
    inbox = tmp_path / "inbox"
    (inbox / "exports").mkdir(parents=True)
    # The workbook the README's lakeside.yaml describes: sheets Clients, Infusions and Visits, US dates, one
    # column per questionnaire, diagnoses in the EHR's words.
    visits = (
        assessments.with_columns(pl.col("administered_at").str.slice(0, 10))
        .unique(["patient_id", "instrument", "administered_at"], keep="last", maintain_order=True)
        .pivot(on="instrument", index=["patient_id", "administered_at"], values="score")
        .rename({"phq9": "PHQ9Total", "gad7": "GAD-7", "nrs_pain": "Pain (0-10)"})
    )
    workbook = xlsxwriter.Workbook(inbox / "exports" / "lakeside_2026-11.xlsx")
    sheets = {
        "Clients": patients.select(
            pl.col("patient_id").alias("Client ID"),
            pl.col("primary_indication")
            .replace({"depression": "MDD", "fibromyalgia": "Chronic pain"})
            .alias("Diagnosis"),
            pl.col("birth_year").alias("Birth Year"),
        ),
        "Infusions": infusions.select(
            pl.col("patient_id").alias("Client ID"),
            pl.col("infused_at").map_elements(us_stamp, return_dtype=pl.String).alias("Date"),
            pl.lit("0.5").alias("Dose"),
        ),
        "Visits": visits.select(
            pl.col("patient_id").alias("Client ID"),
            pl.col("administered_at")
            .map_elements(lambda d: us_stamp(d).split(" ")[0], return_dtype=pl.String)
            .alias("Visit Date"),
            pl.exclude("patient_id", "administered_at"),
        ),
    }
    for name, frame in sheets.items():
        sheet = workbook.add_worksheet(name)
        sheet.write_row(0, 0, frame.columns)
        for row_number, row in enumerate(frame.iter_rows(), start=1):
            sheet.write_row(row_number, 0, ["" if v is None else v for v in row])
    workbook.close()
    (inbox / "sources").mkdir()
    (inbox / "sources" / "lakeside.yaml").write_text(readme_mappings()["lakeside"])
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    assert refresh.rows("select count(*) as n from staging.patients") == [{"n": patients.height}]
    assert refresh.rows("select count(*) as n from staging.infusions") == [{"n": infusions.height}]
    rejected = refresh.rows("select reason, count(*) as n from quarantine.rejected_rows group by 1")
    assert rejected == []


def test_a_mapping_added_after_the_code_loaded_is_read_by_the_next_run(tmp_path):
    # The definitions are built once, as `dagster dev` or a long-running daemon holds them; a mapping file and its
    # export are then dropped into the inbox, as the README's onboarding says, and the same job runs again.
    from dagster import DagsterInstance

    from pipelines.cli import settings_from
    from pipelines.definitions import REFRESH_JOB, build_definitions

    basic = GOLDEN / "basic" / "inbox"
    inbox = write_inbox(
        tmp_path / "inbox",
        (basic / "patients.csv").read_text(),
        (basic / "infusions.csv").read_text(),
        "patient_id,instrument,administered_at,score\n",
    )
    settings = settings_from(
        inbox=inbox, warehouse=tmp_path / "w" / "o.duckdb", reports=tmp_path / "r", as_of="2026-11-01T00:00:00"
    )
    job = build_definitions(settings).resolve_job_def(REFRESH_JOB)
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance, raise_on_error=False).success
        (inbox / "scores.csv").write_text((basic / "assessments.csv").read_text())
        mapping(
            inbox,
            "scores",
            """
            name: scores
            records:
              - type: assessments
                files: scores.csv
                columns:
                  patient_id: patient_id
                  instrument: instrument
                  administered_at: administered_at
                  score: score
        """,
        )
        assert job.execute_in_process(instance=instance, raise_on_error=False).success
    refresh = Refresh(tmp_path)  # reads what the job published
    refresh.warehouse = settings.warehouse
    sources = refresh.rows("select distinct source_file from staging.assessments")
    assert sources == [{"source_file": "scores.csv"}]
