"""Spec §10.6 and §10.4, hand-computed through a refresh: a series' provider and dose band, and the clinicians'
early non-improvement worklist."""

from __future__ import annotations

import pytest

from tests.conftest import Refresh, refreshed_inbox

PATIENTS = """\
    patient_id,clinic_id,primary_indication
    MAJ,c1,depression
    TIE,c1,depression
    NONE,c1,depression
    LOW,c1,depression
    EDGE,c1,depression
    HIGH,c1,depression
    WIP,c1,depression
    OLD,c1,depression
    FIVE,c1,depression
"""
# MAJ: dr-b gives 2 of 3. TIE: dr-b first, then dr-a: one each, the earliest wins. NONE: no provider, no dose.
# Doses: LOW mean 0.45 (<0.5); EDGE mean exactly 0.75 (0.75-<1.0); HIGH mean 1.0 (>=1.0); MAJ 0.5 (0.5-<0.75).
# FIVE: 0.5, 0.57, 0.69, 0.84 and 1.15 mean exactly 0.75, but summed as binary floating point in any order they
# come to 3.7499999999999996 (a mean of 0.7499999999999999, the band below).
# WIP: an induction in progress (last infusion 3 days before the as-of date) flagged after 4 infusions.
# OLD: the same scores, but its induction ended long ago: not in progress, not on the worklist.
INFUSIONS = """\
    patient_id,infused_at,provider_id,dose_mg_per_kg
    MAJ,2026-03-02,dr-a,0.5
    MAJ,2026-03-04,dr-b,0.5
    MAJ,2026-03-06,dr-b,0.5
    TIE,2026-03-02,dr-b,
    TIE,2026-03-04,dr-a,
    NONE,2026-03-02,,
    LOW,2026-03-02,dr-a,0.4
    LOW,2026-03-04,dr-a,0.5
    EDGE,2026-03-02,dr-a,0.5
    EDGE,2026-03-04,dr-a,1.0
    HIGH,2026-03-02,dr-a,1.0
    WIP,2026-10-20,dr-a,0.5
    WIP,2026-10-22,dr-a,0.5
    WIP,2026-10-24,dr-a,0.5
    WIP,2026-10-26,dr-a,0.5
    WIP,2026-10-29,dr-a,0.5
    OLD,2026-03-02,dr-a,0.5
    OLD,2026-03-04,dr-a,0.5
    OLD,2026-03-06,dr-a,0.5
    OLD,2026-03-08,dr-a,0.5
    OLD,2026-03-10,dr-a,0.5
    FIVE,2026-03-02,dr-a,0.5
    FIVE,2026-03-04,dr-a,0.57
    FIVE,2026-03-06,dr-a,0.69
    FIVE,2026-03-09,dr-a,0.84
    FIVE,2026-03-11,dr-a,1.15
"""
ASSESSMENTS = """\
    patient_id,instrument,administered_at,score
    WIP,phq9,2026-10-20,20
    WIP,phq9,2026-10-29,18
    OLD,phq9,2026-03-02,20
    OLD,phq9,2026-03-10,18
"""


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory) -> Refresh:
    return refreshed_inbox(tmp_path_factory.mktemp("provider-dose"), PATIENTS, INFUSIONS, ASSESSMENTS)


def test_a_series_provider_gave_most_of_its_infusions_and_a_tie_goes_to_the_earliest(refreshed):
    rows = refreshed.rows("select patient_id, provider_id from marts.treatment_series order by 1")
    providers = {row["patient_id"]: row["provider_id"] for row in rows}
    assert (providers["MAJ"], providers["TIE"], providers["NONE"]) == ("dr-b", "dr-b", None)


def test_the_dose_band_is_that_of_the_mean_dose_with_each_bound_in_the_band_above(refreshed):
    rows = refreshed.rows("select patient_id, mean_dose_mg_per_kg, dose_band from marts.treatment_series")
    bands = {row["patient_id"]: (row["mean_dose_mg_per_kg"], row["dose_band"]) for row in rows}
    assert bands["LOW"] == (pytest.approx(0.45), "<0.5")
    assert bands["MAJ"] == (0.5, "0.5-<0.75")
    assert bands["EDGE"] == (0.75, "0.75-<1.0")
    assert bands["FIVE"] == (0.75, "0.75-<1.0")
    assert bands["HIGH"] == (1.0, ">=1.0")
    assert bands["NONE"] == (None, "unknown")


def test_the_worklist_holds_inductions_in_progress_that_the_early_check_flags(refreshed):
    # WIP: 20 -> 18 after 4 infusions is -10%, less than a 20% improvement; its last infusion was 3 days ago.
    # OLD is flagged the same way but ended in March.
    flagged = refreshed.rows("select patient_id from marts.series_outcomes where is_early_non_improver")
    assert sorted(row["patient_id"] for row in flagged) == ["OLD", "WIP"]
    worklist = refreshed.rows("select patient_id, instrument, infusion_count from marts.early_non_improvement_worklist")
    assert worklist == [{"patient_id": "WIP", "instrument": "phq9", "infusion_count": 5}]
