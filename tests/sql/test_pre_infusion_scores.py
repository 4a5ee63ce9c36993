"""Spec §6, hand-computed through a refresh: which infusions had a pre-infusion score of the patient's main
instrument, and the adherence rate counted from them."""

from __future__ import annotations

import pytest

from tests.conftest import Refresh, refreshed_inbox

PATIENTS = """\
    patient_id,clinic_id,primary_indication
    P,c1,depression
"""
# P's main instrument is PHQ-9 (three scores against one GAD-7). Its five infusions:
# 03-02 10:00 PHQ-9 at 09:30 the same day: measured.
# 03-04 10:00 PHQ-9 at 10:00, the moment it started: measured (at or before).
# 03-06 10:00 PHQ-9 at 11:00, after it started: not measured.
# 03-09 10:00 PHQ-9 on 03-08 only, the day before: not measured.
# 03-11 10:00 GAD-7 at 09:00, not the main instrument: not measured.
INFUSIONS = """\
    patient_id,infused_at
    P,2026-03-02T10:00:00
    P,2026-03-04T10:00:00
    P,2026-03-06T10:00:00
    P,2026-03-09T10:00:00
    P,2026-03-11T10:00:00
"""
ASSESSMENTS = """\
    patient_id,instrument,administered_at,score
    P,phq9,2026-03-02T09:30:00,20
    P,phq9,2026-03-04T10:00:00,18
    P,phq9,2026-03-06T11:00:00,15
    P,phq9,2026-03-08T18:00:00,14
    P,gad7,2026-03-11T09:00:00,12
"""


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory) -> Refresh:
    return refreshed_inbox(tmp_path_factory.mktemp("pre-infusion"), PATIENTS, INFUSIONS, ASSESSMENTS)


def test_a_pre_infusion_score_is_the_main_instruments_on_the_infusions_day_at_or_before_it(refreshed):
    rows = refreshed.rows("select infused_at, has_pre_infusion_score from marts.infusion_sessions order by 1")
    assert [row["has_pre_infusion_score"] for row in rows] == [True, True, False, False, False]


def test_adherence_counts_the_measured_infusions_of_the_clinic(refreshed):
    (clinic,) = refreshed.rows(
        "select infusion_count, measured_infusion_count, adherence_rate from marts.measurement_adherence "
        "where dimension = 'clinic' and dimension_value = 'c1'"
    )
    assert (clinic["infusion_count"], clinic["measured_infusion_count"]) == (5, 2)
    assert clinic["adherence_rate"] == pytest.approx(0.4)
