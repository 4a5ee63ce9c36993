"""Spec §6 and §10.7, hand-computed through a refresh: the safety summary, dissociation by infusion number and
the induction completion funnel, for the network, a clinic and an indication."""

from __future__ import annotations

import pytest

from tests.conftest import Refresh, refreshed_inbox

PATIENTS = """\
    patient_id,clinic_id,primary_indication
    A,c1,depression
    B,c1,ptsd
    C,c2,depression
"""
# Inductions: A six infusions, B three, C two; C's infusion on 06-01 is a booster (59 days after its induction).
# Alerts at their defaults: hypertensive at systolic >= 180 or diastolic >= 110, desaturation below 90% SpO2.
#
#     systolic pre/max, diastolic max, SpO2   hypertensive   desaturation   rise   adverse events
# A1  120/185, 90, 95                        yes (185)      no             65     nausea, dissociation
# A2  120/150, 112, 88                       yes (112)      yes            30     none
# A3  130/140, 80, -                         no             not recorded   10     headache
# A4  -, -, 97                               not recorded   no             -      dissociation, tinnitus (other)
# A5  120/130, 80, 96                        no             no             10     none
# A6  120/130, 80, 96                        no             no             10     vomiting
# B1  110/180, 70, 89.9                      yes (180)      yes            70     nausea
# B2  110/179, 109, 90                       no             no (90)        69     none
# B3  -, -, -                                not recorded   not recorded   -      none
# C1  140/150, 90, 95                        no             no             10     dizziness
# C2  140/150, 90, 95                        no             no             10     none
# C3  140/190, 90, 95 (booster)              yes            no             50     dissociation
INFUSIONS = """\
    patient_id,infused_at,bp_systolic_pre,bp_systolic_max,bp_diastolic_max,spo2_min,adverse_events
    A,2026-03-02T10:00:00,120,185,90,95,nausea;dissociation
    A,2026-03-04T10:00:00,120,150,112,88,
    A,2026-03-06T10:00:00,130,140,80,,headache
    A,2026-03-09T10:00:00,,,,97,Dissociation; tinnitus
    A,2026-03-11T10:00:00,120,130,80,96,
    A,2026-03-13T10:00:00,120,130,80,96,vomiting
    B,2026-03-02T10:00:00,110,180,70,89.9,nausea
    B,2026-03-04T10:00:00,110,179,109,90,
    B,2026-03-06T10:00:00,,,,,
    C,2026-04-01T10:00:00,140,150,90,95,dizziness
    C,2026-04-03T10:00:00,140,150,90,95,
    C,2026-06-01T10:00:00,140,190,90,95,dissociation
"""
# CADSS after the first infusions: A's 20; B's highest of the day, 30; C's was before its infusion started.
ASSESSMENTS = """\
    patient_id,instrument,administered_at,score
    A,cadss,2026-03-02T11:00:00,20
    B,cadss,2026-03-02T12:00:00,10
    B,cadss,2026-03-02T13:00:00,30
    C,cadss,2026-04-01T08:00:00,40
"""


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory) -> Refresh:
    return refreshed_inbox(tmp_path_factory.mktemp("infusion-safety"), PATIENTS, INFUSIONS, ASSESSMENTS)


def cohort(refreshed: Refresh, table: str, dimension: str, value: str, order: str = "") -> list[dict]:
    return refreshed.rows(
        f"select * exclude (dimension, dimension_value) from marts.{table} "
        f"where dimension = ? and dimension_value = ? {order}",
        dimension,
        value,
    )


def test_the_networks_safety_rates_count_only_the_infusions_that_recorded_their_inputs(refreshed):
    (network,) = cohort(refreshed, "safety_summary", "network", "all")
    assert network["infusion_count"] == 12
    assert (network["bp_recorded_count"], network["hypertensive_count"]) == (10, 4)
    assert network["hypertensive_rate"] == pytest.approx(0.4)
    assert (network["spo2_recorded_count"], network["desaturation_count"]) == (10, 2)
    assert network["desaturation_rate"] == pytest.approx(0.2)
    assert network["mean_systolic_rise"] == pytest.approx(334 / 10)
    assert network["adverse_events_recorded_count"] == 12
    counts = {code: network[f"{code}_count"] for code in ("nausea", "vomiting", "dissociation", "dysphoria")}
    assert counts == {"nausea": 2, "vomiting": 1, "dissociation": 2 + 1, "dysphoria": 0}
    assert (network["headache_count"], network["dizziness_count"], network["hypertension_count"]) == (1, 1, 0)
    assert network["other_count"] == 1
    assert network["dissociation_per_100"] == pytest.approx(25.0)
    assert network["nausea_per_100"] == pytest.approx(100 * 2 / 12)


def test_a_clinic_and_an_indication_count_their_own_infusions(refreshed):
    (clinic,) = cohort(refreshed, "safety_summary", "clinic", "c1")
    assert (clinic["infusion_count"], clinic["bp_recorded_count"], clinic["hypertensive_count"]) == (9, 7, 3)
    assert clinic["hypertensive_rate"] == pytest.approx(3 / 7)
    assert (clinic["spo2_recorded_count"], clinic["desaturation_count"]) == (7, 2)
    assert clinic["mean_systolic_rise"] == pytest.approx(264 / 7)
    assert (clinic["dissociation_count"], clinic["other_count"]) == (2, 1)
    (depression,) = cohort(refreshed, "safety_summary", "indication", "depression")
    assert (depression["infusion_count"], depression["bp_recorded_count"], depression["hypertensive_count"]) == (
        9,
        8,
        3,
    )
    assert depression["desaturation_rate"] == pytest.approx(1 / 8)
    assert depression["mean_systolic_rise"] == pytest.approx(195 / 8)
    assert depression["dissociation_per_100"] == pytest.approx(100 * 3 / 9)
    (ptsd,) = cohort(refreshed, "safety_summary", "indication", "ptsd")
    assert (ptsd["infusion_count"], ptsd["bp_recorded_count"], ptsd["spo2_recorded_count"]) == (3, 2, 2)
    assert ptsd["mean_systolic_rise"] == pytest.approx((70 + 69) / 2)


def test_dissociation_by_infusion_number_counts_inductions_only_with_the_highest_cadss_after_the_infusion(refreshed):
    network = cohort(refreshed, "dissociation_by_infusion_number", "network", "all", "order by infusion_number")
    assert [(r["infusion_number"], r["infusion_count"], r["dissociation_count"]) for r in network] == [
        (1, 3, 1),
        (2, 3, 0),
        (3, 2, 0),
        (4, 1, 1),
        (5, 1, 0),
        (6, 1, 0),
    ]
    first = network[0]
    assert first["dissociation_per_100"] == pytest.approx(100 / 3)
    assert (first["cadss_count"], first["mean_cadss"]) == (2, pytest.approx(25.0))
    assert all(r["cadss_count"] == 0 and r["mean_cadss"] is None for r in network[1:])
    c2 = cohort(refreshed, "dissociation_by_infusion_number", "clinic", "c2", "order by infusion_number")
    # C's booster infusion (dissociation) is not an induction's; its first infusion's CADSS was taken before it.
    assert [(r["infusion_number"], r["dissociation_count"], r["cadss_count"]) for r in c2] == [(1, 0, 0), (2, 0, 0)]


def test_the_funnel_counts_the_inductions_reaching_each_infusion(refreshed):
    def reaching(dimension: str, value: str) -> list[tuple[int, int, int]]:
        rows = cohort(refreshed, "completion_funnel", dimension, value, "order by infusion_number")
        return [(r["infusion_number"], r["inductions_reaching"], r["induction_count"]) for r in rows]

    assert reaching("network", "all") == [(1, 3, 3), (2, 3, 3), (3, 2, 3), (4, 1, 3), (5, 1, 3), (6, 1, 3)]
    assert reaching("clinic", "c1") == [(1, 2, 2), (2, 2, 2), (3, 2, 2), (4, 1, 2), (5, 1, 2), (6, 1, 2)]
    assert reaching("indication", "ptsd") == [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 0, 1), (5, 0, 1), (6, 0, 1)]
    (third,) = [r for r in cohort(refreshed, "completion_funnel", "network", "all") if r["infusion_number"] == 3]
    assert third["share_reaching"] == pytest.approx(2 / 3)


def test_the_booster_is_a_series_of_its_own(refreshed):
    series = refreshed.rows("select series_kind, infusion_count from marts.treatment_series where patient_id = 'C'")
    assert sorted((s["series_kind"], s["infusion_count"]) for s in series) == [("booster", 1), ("induction", 2)]


# Booster intervals, on an inbox of their own. E: an induction, boosters 30 and 45 days after the series before
# them, then a series 194 days later, which is a re-induction (over reinduction_gap_days, 180) and no booster's.
# F: an induction and a booster 60 days after it.
BOOSTER_PATIENTS = """\
    patient_id,clinic_id,primary_indication
    E,c1,depression
    F,c2,depression
"""
BOOSTER_INFUSIONS = """\
    patient_id,infused_at
    E,2026-01-05T10:00:00
    E,2026-02-04T10:00:00
    E,2026-03-21T10:00:00
    E,2026-10-01T10:00:00
    F,2026-01-05T10:00:00
    F,2026-03-06T10:00:00
"""
NO_ASSESSMENTS = "patient_id,instrument,administered_at,score\n"


@pytest.fixture(scope="module")
def boosters(tmp_path_factory) -> Refresh:
    return refreshed_inbox(tmp_path_factory.mktemp("boosters"), BOOSTER_PATIENTS, BOOSTER_INFUSIONS, NO_ASSESSMENTS)


def test_booster_intervals_are_the_days_before_each_booster_and_a_reinduction_is_not_one(boosters):
    kinds = boosters.rows(
        "select series_kind from marts.treatment_series where patient_id = 'E' order by series_number"
    )
    assert [k["series_kind"] for k in kinds] == ["induction", "booster", "booster", "induction"]
    (network,) = cohort(boosters, "booster_intervals", "network", "all")
    # Linear interpolation between order statistics, as numpy.percentile's default gives for [30, 45, 60].
    assert (network["interval_count"], network["median_days"]) == (3, 45)
    assert (network["p25_days"], network["p75_days"]) == (pytest.approx(37.5), pytest.approx(52.5))
    (clinic,) = cohort(boosters, "booster_intervals", "clinic", "c1")
    assert (clinic["interval_count"], clinic["median_days"], clinic["p25_days"]) == (2, 37.5, pytest.approx(33.75))
