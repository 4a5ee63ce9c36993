"""Shared spec §8: every bad row is quarantined with the first reason that applies; nothing is lost."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.conftest import Refresh, refreshed_inbox, write_inbox

PATIENTS = """\
    patient_id,clinic_id,primary_indication,birth_year,favourite_colour
    P1,austin,depression,1980,blue
    P2,austin,crps,1850,
    ,austin,depression,1970,
    P3,frisco,depression,abc,
    P4,frisco,ptsd,1990,
    P5,frisco,depression,,
    P5,frisco,depression,,
    """
INFUSIONS = """\
    patient_id,infused_at,dose_mg_per_kg,spo2_min,adverse_events
    P1,2026-01-05,0.5,97,nausea; Dissociation
    P1,2026-01-07T10:00:00-05:00,0.5,96,
    P1,2026-01-09,0,96,
    P1,2026/01/09,0.5,96,
    P1,2026-01-11,0.5,9O,
    P2,2026-01-05,0.5,96,
    P4,2026-01-05,0.5,96,
    P4,2026-01-05,0.6,96,
    P1,2027-01-01,0.5,96,
    P1,,0.5,96,
    P1,2026-01-12,0.5,101,
    """
ASSESSMENTS = """\
    patient_id,instrument,administered_at,score,item_1,item_2,item_3,item_4,item_5,item_6,item_7,item_8,item_9
    P1,phq9,2026-01-05,20,,,,,,,,,
    P1,PHQ9,2026-01-12,,1,1,1,1,1,1,1,1,2
    P1,phq9,2026-01-13,,1,1,1,,1,1,1,1,1
    P1,phq9,2026-01-14,28,,,,,,,,,
    P1,phq9,2026-01-15,5,,,,,,,,,
    P1,phq9,2026-01-15,5,,,,,,,,,
    P1,gad7,2026-1-16,5,,,,,,,,,
    P1,madrs,2026-01-16,nan,,,,,,,,,
    P1,phq-9,2026-01-16,5,,,,,,,,,
    P1,phq9,2026-01-17,5,1,1,1,1,4,1,1,1,1
    P1,phq9,2026-01-18,5,1,x,1,1,1,1,1,1,1
    P1,,2026-01-18,5,,,,,,,,,
    P9,phq-9,2026-01-18,5,,,,,,,,,
    P9,phq9,2026-01-18,5,,,,,,,,,
    P2,nrs_pain,2026-01-05,7,,,,,,,,,
    P1,gad7,2026-01-20,6,,,,,,,,,
    P1,gad7,2026-01-20,7,,,,,,,,,
    P1,gad7,2026-01-20,99,,,,,,,,,
    P1,phq9,2026-11-02,5,,,,,,,,,
    P9,phq9,2026-11-02,5,,,,,,,,,
    """


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> Refresh:
    root = tmp_path_factory.mktemp("validation")
    inbox = write_inbox(root / "inbox", PATIENTS, INFUSIONS, ASSESSMENTS)
    refresh = Refresh(root / "out")
    refresh.ok(inbox)
    return refresh


def rejection(refresh: Refresh, file: str, row: int) -> dict | None:
    rows = refresh.rows("select * from quarantine.rejected_rows where source_file = ? and row_number = ?", file, row)
    return rows[0] if rows else None


def reason(refresh: Refresh, file: str, row: int) -> str | None:
    found = rejection(refresh, file, row)
    return found["reason"] if found else None


@pytest.mark.parametrize(
    ("file", "row", "expected"),
    [
        ("patients.csv", 2, "value_out_of_range"),  # born 1850
        ("patients.csv", 3, "missing_field"),
        ("patients.csv", 4, "unparseable_number"),  # birth_year abc
        ("infusions.csv", 3, "value_out_of_range"),  # dose 0
        ("infusions.csv", 4, "unparseable_timestamp"),  # 2026/01/09
        ("infusions.csv", 5, "unparseable_number"),  # spo2 9O (letter O)
        ("infusions.csv", 6, "unknown_patient"),  # P2 was rejected
        ("infusions.csv", 7, "duplicate_conflict"),
        ("infusions.csv", 8, "duplicate_conflict"),
        ("infusions.csv", 9, "future_timestamp"),
        ("infusions.csv", 10, "missing_field"),
        ("infusions.csv", 11, "value_out_of_range"),  # SpO2 101
        ("assessments.csv", 3, "missing_field"),  # score empty, item 4 empty
        ("assessments.csv", 4, "score_out_of_range"),  # PHQ-9 28
        ("assessments.csv", 7, "unparseable_timestamp"),  # 2026-1-16 is not ISO 8601
        ("assessments.csv", 8, "unparseable_number"),  # nan
        ("assessments.csv", 9, "unknown_instrument"),
        ("assessments.csv", 10, "score_out_of_range"),  # item 5 = 4 on a 0-3 item
        ("assessments.csv", 11, "unparseable_number"),  # item 2 = x
        ("assessments.csv", 12, "missing_field"),
        ("assessments.csv", 13, "unknown_instrument"),  # before unknown_patient in the spec's order
        ("assessments.csv", 14, "unknown_patient"),
        ("assessments.csv", 15, "unknown_patient"),  # P2 was rejected
        ("assessments.csv", 16, "duplicate_conflict"),
        ("assessments.csv", 17, "duplicate_conflict"),
        ("assessments.csv", 18, "score_out_of_range"),  # invalid: not part of the conflict
        ("assessments.csv", 19, "future_timestamp"),
        ("assessments.csv", 20, "future_timestamp"),  # before unknown_patient in the spec's order
    ],
)
def test_bad_row_is_rejected_with_the_first_reason_that_applies(validated, file, row, expected):
    assert reason(validated, file, row) == expected


def test_good_rows_are_accepted_and_only_bad_rows_rejected(validated):
    rejected = {(r["source_file"], r["row_number"]) for r in validated.rows("select * from quarantine.rejected_rows")}
    assert ("patients.csv", 1) not in rejected and ("patients.csv", 5) not in rejected
    assert len(rejected) == 3 + 9 + 16


def test_same_patient_sent_twice_identically_is_kept_once_and_counted(validated):
    assert validated.rows("select count(*) as n from staging.patients where patient_id = 'P5'")[0]["n"] == 1
    accounts = {r["source_file"]: r for r in validated.rows("select * from quarantine.file_accounts")}
    assert accounts["patients.csv"]["duplicates_removed"] == 1
    assert accounts["assessments.csv"]["duplicates_removed"] == 1


def test_every_row_read_is_accepted_rejected_or_a_counted_duplicate(validated):
    for account in validated.rows("select * from quarantine.file_accounts"):
        assert account["rows_read"] == (
            account["rows_accepted"] + account["rows_rejected"] + account["duplicates_removed"]
        )


def test_rejected_row_keeps_the_whole_original_row_and_says_which_field(validated):
    found = rejection(validated, "infusions.csv", 5)
    assert json.loads(found["raw_record"]) == {
        "patient_id": "P1",
        "infused_at": "2026-01-11",
        "dose_mg_per_kg": "0.5",
        "spo2_min": "9O",
        "adverse_events": "",
        # optional contract columns the file lacks are shown empty
        "duration_min": None,
        "provider_id": None,
        "bp_systolic_pre": None,
        "bp_diastolic_pre": None,
        "bp_systolic_max": None,
        "bp_diastolic_max": None,
        "heart_rate_max": None,
        "rescue_medication": None,
    }
    assert found["detail"] == "spo2_min = '9O' is not a number"


def test_unknown_extra_columns_are_kept_in_raw_never_an_error(validated):
    found = rejection(validated, "patients.csv", 2)
    assert json.loads(found["raw_record"])["favourite_colour"] == ""
    assert validated.rows("select count(*) as n from staging.patients")[0]["n"] == 3  # P1, P4, P5


def test_total_is_derived_from_items_when_the_score_is_empty(validated):
    row = validated.rows(
        "select * from staging.assessments where patient_id = 'P1' and administered_at = '2026-01-12'"
    )[0]
    assert (row["instrument"], row["score"], row["score_source"]) == ("phq9", 10.0, "items")
    assert (row["phq9_item9"], row["has_suicidality_flag"]) == (2.0, True)


def test_timestamp_with_an_offset_is_converted_to_clinic_local_time(validated):
    stamps = [r["infused_at"] for r in validated.rows("select infused_at from staging.infusions order by 1")]
    # 10:00 at UTC-05:00 is 15:00 UTC, 09:00 in America/Chicago (UTC-06:00 in January).
    assert datetime(2026, 1, 7, 9, 0) in stamps


def test_adverse_event_codes_are_split_and_normalised(validated):
    rows = validated.rows("select adverse_events from staging.infusions where infused_at = '2026-01-05'")
    assert rows == [{"adverse_events": ["nausea", "dissociation"]}]


def test_item_columns_are_parsed_one_by_one_whatever_their_separator_like_text(tmp_path):
    # Plain items are proven by one regex over the items joined by '|' (assessments_validated.sql): an item
    # holding a '|' must still be judged on its own.
    refresh = refreshed_inbox(
        tmp_path,
        "patient_id,clinic_id,primary_indication,birth_year\nP1,austin,depression,1980\n",
        "patient_id,infused_at,dose_mg_per_kg\nP1,2026-01-05,0.5\n",
        """\
        patient_id,instrument,administered_at,score,item_1,item_2,item_3,item_4,item_5,item_6,item_7,item_8,item_9
        P1,phq9,2026-01-05,, 1 ,+1,1.,1e0,.3E1,0,1,1,2
        P1,phq9,2026-01-06,9,1,1|2,1,1,1,1,1,1,1
        P1,phq9,2026-01-07,9,1,1|,1,1,1,1,1,1,1
        P1,phq9,2026-01-08,9,1,1,|,1,1,1,1,1,1
        P1,phq9,2026-01-09,9,1 2,1,1,1,1,1,1,1,1
        """,
    )
    (plain,) = refresh.rows("select * from quarantine.assessments_validated where row_number = 1")
    assert plain["reason"] is None
    assert plain["item_scores"] == [1.0, 1.0, 1.0, 1.0, 3.0, 0.0, 1.0, 1.0, 2.0]
    assert (plain["score"], plain["score_source"]) == (11.0, "items")
    details = refresh.rows(
        "select row_number, reason, detail from quarantine.assessments_validated where row_number > 1 order by 1"
    )
    assert details == [
        {"row_number": 2, "reason": "unparseable_number", "detail": "item_2 = '1|2' is not a number"},
        {"row_number": 3, "reason": "unparseable_number", "detail": "item_2 = '1|' is not a number"},
        {"row_number": 4, "reason": "unparseable_number", "detail": "item_3 = '|' is not a number"},
        {"row_number": 5, "reason": "unparseable_number", "detail": "item_1 = '1 2' is not a number"},
    ]
