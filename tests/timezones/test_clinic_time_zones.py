"""Spec §10.1, hand-computed: each patient's timestamps are read, and calendar days counted, in their clinic's zone.

Denver (America/Denver) is UTC-7 and New York (America/New_York) UTC-5 in February and March 2026 (US daylight
time starts on 8 March 2026). The same instants, sent with Z, fall on different local dates either side of midnight:
read in one zone for both clinics, each pair of patients below would get the same answer.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import write_inbox

CLINICS = """\
    clinic_id,clinic_name,timezone
    den,Denver Ketamine Center,America/Denver
    nyc,,America/New_York
"""


def inbox_with_clinics(folder, clinics: str = CLINICS, **files):
    inbox = write_inbox(folder, **files)
    (inbox / "clinics.csv").write_text(textwrap.dedent(clinics))
    return inbox


PATIENTS = """\
    patient_id,clinic_id,primary_indication
    D-split,den,depression
    N-split,nyc,depression
    D-base,den,depression
    N-base,nyc,depression
    D-relief,den,depression
    N-relief,nyc,depression
    X-default,elsewhere,depression
"""
# 05:30Z on 1 March is 22:30 on 28 February in Denver and 00:30 on 1 March in New York.
INFUSIONS = """\
    patient_id,infused_at
    D-split,2026-03-01T05:30:00Z
    D-split,2026-03-15T12:00:00Z
    N-split,2026-03-01T05:30:00Z
    N-split,2026-03-15T12:00:00Z
    D-base,2026-03-01T05:30:00Z
    N-base,2026-03-01T05:30:00Z
    D-relief,2026-03-01T05:30:00Z
    N-relief,2026-03-01T05:30:00Z
    X-default,2026-03-01T05:30:00Z
"""
ASSESSMENTS = """\
    patient_id,instrument,administered_at,score
    D-base,phq9,2026-01-29T12:00:00Z,20
    D-base,phq9,2026-03-05,8
    N-base,phq9,2026-01-29T12:00:00Z,20
    N-base,phq9,2026-03-05,8
    D-relief,phq9,2026-02-25,20
    D-relief,phq9,2026-03-05,8
    D-relief,phq9,2026-03-20T03:00:00Z,18
    N-relief,phq9,2026-02-25,20
    N-relief,phq9,2026-03-05,8
    N-relief,phq9,2026-03-20T03:00:00Z,18
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from tests.conftest import Refresh

    root = tmp_path_factory.mktemp("time-zones")
    inbox = inbox_with_clinics(root / "inbox", patients=PATIENTS, infusions=INFUSIONS, assessments=ASSESSMENTS)
    refresh = Refresh(root / "out")
    # The default zone is neither clinic's: a patient of a clinic without a row is read in it.
    refresh.ok(inbox, clinic_timezone="Asia/Tokyo")
    return refresh


def test_an_offset_timestamp_is_converted_to_the_patients_clinic_time(warehouse):
    rows = warehouse.rows(
        "select patient_id, strftime(infused_at, '%Y-%m-%d %H:%M') as local from staging.infusions "
        "where patient_id in ('D-base', 'N-base', 'X-default') order by 1"
    )
    assert {r["patient_id"]: r["local"] for r in rows} == {
        "D-base": "2026-02-28 22:30",
        "N-base": "2026-03-01 00:30",
        "X-default": "2026-03-01 14:30",  # no clinics.csv row: the clinic_timezone setting (Tokyo, UTC+9)
    }


def test_the_series_gap_counts_days_in_the_clinics_zone(warehouse):
    # Denver: 28 February to 15 March is 15 days, over the 14-day gap: two series. New York: 1 to 15 March, one.
    series = warehouse.rows(
        "select patient_id, count(*) as series from marts.treatment_series "
        "where patient_id in ('D-split', 'N-split') group by 1 order by 1"
    )
    assert [(r["patient_id"], r["series"]) for r in series] == [("D-split", 2), ("N-split", 1)]


def test_the_baseline_window_counts_days_in_the_clinics_zone(warehouse):
    # The baseline is 29 January local in both zones. Denver's series starts 28 February (30 days: in the window);
    # New York's on 1 March (31 days: out).
    rows = warehouse.rows(
        "select patient_id, status from marts.series_outcomes where patient_id in ('D-base', 'N-base') order by 1"
    )
    assert [(r["patient_id"], r["status"]) for r in rows] == [("D-base", "evaluable"), ("N-base", "no_baseline")]


def test_relief_days_count_in_the_clinics_zone(warehouse):
    # Relapse at 03:00Z on 20 March: 20:00 on 19 March in Denver, 23:00 on 19 March in New York. The series ended
    # 28 February in Denver (19 days of relief) and 1 March in New York (18 days).
    rows = warehouse.rows(
        "select patient_id, relief_status, relief_days from marts.series_outcomes "
        "where patient_id in ('D-relief', 'N-relief') order by 1"
    )
    assert [(r["patient_id"], r["relief_status"], r["relief_days"]) for r in rows] == [
        ("D-relief", "relapsed", 19),
        ("N-relief", "relapsed", 18),
    ]


def test_a_clinic_without_a_name_or_zone_keeps_its_id_and_the_default_zone(warehouse):
    rows = warehouse.rows(
        "select clinic_id, clinic_name, timezone, is_default_timezone from staging.clinics order by 1"
    )
    assert rows == [
        {
            "clinic_id": "den",
            "clinic_name": "Denver Ketamine Center",
            "timezone": "America/Denver",
            "is_default_timezone": False,
        },
        {"clinic_id": "nyc", "clinic_name": None, "timezone": "America/New_York", "is_default_timezone": False},
    ]


def test_an_unknown_time_zone_fails_the_run_naming_the_file_row_and_value(tmp_path, refresh):
    clinics = """\
        clinic_id,timezone
        den,America/Denver
        nyc,America/NewYork
    """
    inbox = inbox_with_clinics(tmp_path / "inbox", clinics, patients=PATIENTS, infusions=INFUSIONS, assessments="")
    (inbox / "assessments.csv").write_text("patient_id,instrument,administered_at,score\n")
    result = refresh.run(inbox)
    assert not result.success
    from pipelines.cli import failure_reason

    reason = failure_reason(result)
    assert "clinics.csv row 2 (line 3): timezone = 'America/NewYork' is not an IANA time zone name" in reason
    assert not refresh.warehouse.exists()  # nothing was published


def test_a_future_timestamp_is_judged_against_the_same_instant_in_every_zone(tmp_path, refresh):
    # As of 2026-11-01T00:00 in Chicago (UTC-5 in daylight time) = 05:00Z = 23:00 on 31 October in Denver (UTC-6).
    # 22:30 in Denver is before it; 23:30 in Denver is after it, though before midnight in Chicago's reckoning.
    inbox = inbox_with_clinics(
        tmp_path / "inbox",
        patients="patient_id,clinic_id,primary_indication\nD1,den,depression\n",
        infusions="patient_id,infused_at\nD1,2026-10-31T22:30:00\nD1,2026-10-31T23:30:00\n",
        assessments="patient_id,instrument,administered_at,score\n",
    )
    refresh.ok(inbox, clinic_timezone="America/Chicago", as_of="2026-11-01T00:00:00")
    rejected = refresh.rows("select row_number, reason, detail from quarantine.rejected_rows")
    assert [(r["row_number"], r["reason"]) for r in rejected] == [(2, "future_timestamp")]
    assert (
        rejected[0]["detail"] == "infused_at 2026-10-31T23:30:00 (clinic local time) is after the refresh's as-of time"
    )


def test_the_night_its_clinics_time_passes_a_future_row_its_patient_alone_is_recomputed(tmp_path):
    # Night 1 is as of 00:00 on 31 October 2026 in Chicago (UTC-5): 23:00 on 30 October in Denver (UTC-6).
    # Night 2 is as of 01:00 in Chicago: 00:00 in Denver. D-passed's 23:30 (Denver) is future on night 1 and
    # not on night 2; read in Chicago's zone it would never have been future. D-ahead's 00:30 on 31 October
    # (Denver, 01:30 in Chicago) and C-ahead's 01:30 (Chicago) are future both nights, rejected alike.
    from tests.conftest import Refresh

    clinics = "clinic_id,clinic_name,timezone\nden,Denver,America/Denver\nchi,Chicago,America/Chicago\n"
    inbox = inbox_with_clinics(
        tmp_path / "inbox",
        clinics,
        patients=(
            "patient_id,clinic_id,primary_indication\n"
            "D-passed,den,depression\nD-ahead,den,depression\nC-ahead,chi,depression\n"
        ),
        infusions=(
            "patient_id,infused_at\n"
            "D-passed,2026-10-20T10:00:00\nD-passed,2026-10-30T23:30:00\n"
            "D-ahead,2026-10-20T10:00:00\nD-ahead,2026-10-31T00:30:00\n"
            "C-ahead,2026-10-20T10:00:00\nC-ahead,2026-10-31T01:30:00\n"
        ),
        assessments="",
    )
    (inbox / "assessments.csv").write_text("patient_id,instrument,administered_at,score\n")
    future = "select patient_id, detail from quarantine.rejected_rows where reason = 'future_timestamp' order by 1"
    nightly = Refresh(tmp_path / "nightly")
    nightly.ok(inbox, clinic_timezone="America/Chicago", as_of="2026-10-31T00:00:00")
    assert [row["patient_id"] for row in nightly.rows(future)] == ["C-ahead", "D-ahead", "D-passed"]

    nightly.ok(inbox, clinic_timezone="America/Chicago", as_of="2026-10-31T01:00:00")
    last = nightly.rows("select refresh_scope, patients_recomputed from meta.refreshes order by refreshed_at")[-1]
    assert last["refresh_scope"] == "incremental: 1 patient recomputed"
    assert last["patients_recomputed"] == 1
    assert [row["patient_id"] for row in nightly.rows(future)] == ["C-ahead", "D-ahead"]
    full = Refresh(tmp_path / "full")
    full.ok(inbox, clinic_timezone="America/Chicago", as_of="2026-10-31T01:00:00")
    for query in (
        future,
        "select * from staging.infusions order by all",
        "select * from marts.treatment_series order by all",
    ):
        assert nightly.rows(query) == full.rows(query)
    # The infusion the as-of time passed joins D-passed's series.
    passed = "select infusion_count from marts.treatment_series where patient_id = 'D-passed'"
    assert nightly.rows(passed) == [{"infusion_count": 2}]

    # Run again as of the first night (an as-of time moved back): the row is future again, its patient alone
    # recomputed.
    nightly.ok(inbox, clinic_timezone="America/Chicago", as_of="2026-10-31T00:00:00")
    last = nightly.rows("select refresh_scope from meta.refreshes order by refreshed_at")[-1]
    assert last["refresh_scope"] == "incremental: 1 patient recomputed"
    assert [row["patient_id"] for row in nightly.rows(future)] == ["C-ahead", "D-ahead", "D-passed"]
    assert nightly.rows(passed) == [{"infusion_count": 1}]


def test_a_changed_clinic_zone_recomputes_every_patient_and_equals_a_full_refresh(tmp_path):
    from tests.conftest import Refresh

    inbox = inbox_with_clinics(tmp_path / "inbox", patients=PATIENTS, infusions=INFUSIONS, assessments=ASSESSMENTS)
    nightly = Refresh(tmp_path / "nightly")
    nightly.ok(inbox)
    # Denver's patients move to Honolulu (UTC-10): 05:30Z on 1 March is 19:30 on 28 February there.
    (inbox / "clinics.csv").write_text(
        "clinic_id,clinic_name,timezone\nden,Denver,Pacific/Honolulu\nnyc,,America/New_York\n"
    )
    nightly.ok(inbox)
    last = nightly.rows("select refresh_scope from meta.refreshes order by refreshed_at")[-1]
    assert last["refresh_scope"] == (
        "full: the clinics changed: every patient's timestamps are read again in their clinic's time zone"
    )
    full = Refresh(tmp_path / "full")
    full.ok(inbox)
    query = "select patient_id, infused_at from staging.infusions order by 1, 2"
    assert nightly.rows(query) == full.rows(query)
    assert nightly.rows(query)[0]["infused_at"].isoformat() == "2026-02-28T19:30:00"


def test_sources_check_names_an_unknown_time_zone_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import main

    clinics = "clinic_id,timezone\nden,Mountain Time\n"
    inbox = inbox_with_clinics(tmp_path / "inbox", clinics, patients=PATIENTS, infusions=INFUSIONS, assessments="")
    (inbox / "assessments.csv").write_text("patient_id,instrument,administered_at,score\n")
    result = CliRunner().invoke(main, ["sources", "check", "--inbox", str(inbox)])
    assert result.exit_code == 1
    assert "a refresh would fail: clinics.csv row 1 (line 2): timezone = 'Mountain Time' is not an IANA time zone" in (
        result.output
    )
    assert "Traceback" not in result.output
