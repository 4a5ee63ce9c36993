"""The demo generator: calibrated to published cohorts, and awkward on purpose."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pipelines.demo.generator import inbox_frames, write_inbox
from tests.conftest import Refresh

END = date(2026, 6, 30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Refresh:
    root = tmp_path_factory.mktemp("demo")
    write_inbox(root / "inbox", patients=6000, clinics=4, seed=3, end_date=END, years=3.0)
    refresh = Refresh(root / "out")
    refresh.ok(root / "inbox", as_of="2026-06-30T00:00:00")
    return refresh


def one(refresh: Refresh, sql: str) -> float:
    return next(iter(refresh.rows(sql)[0].values()))


def test_about_a_fifth_of_inductions_stop_after_one_infusion_and_under_half_reach_six(demo):
    first = "from marts.treatment_series where series_number = 1"
    assert 0.17 <= one(demo, f"select avg((infusion_count = 1)::int) {first}") <= 0.23
    assert 0.38 <= one(demo, f"select avg((infusion_count < 6)::int) {first}") <= 0.52


def test_about_half_of_completed_inductions_respond_on_phq9_and_a_fifth_to_a_third_remit(demo):
    cohort = (
        "from marts.series_outcomes where instrument = 'phq9' and status = 'evaluable' "
        "and series_kind = 'induction' and is_completed_induction"
    )
    assert 0.40 <= one(demo, f"select avg(is_responder::int) {cohort}") <= 0.60
    assert 0.15 <= one(demo, f"select avg(is_remitter::int) {cohort}") <= 0.33


def test_pain_patients_start_near_seven_and_about_half_reach_a_thirty_percent_reduction(demo):
    pain = "from marts.series_outcomes where instrument = 'nrs_pain' and status = 'evaluable' and series_number = 1"
    assert 6.5 <= one(demo, f"select avg(baseline_score) {pain}") <= 7.5
    assert 0.35 <= one(demo, f"select avg(is_responder::int) {pain} and is_completed_induction") <= 0.65


def test_about_one_percent_of_sessions_are_hypertensive_and_a_tenth_bring_nausea(demo):
    infusions = "from staging.infusions"
    assert (
        0.005 <= one(demo, f"select avg((bp_systolic_max >= 180 or bp_diastolic_max >= 110)::int) {infusions}") <= 0.02
    )
    assert 0.08 <= one(demo, f"select avg(list_contains(adverse_events, 'nausea')::int) {infusions}") <= 0.12


def test_many_responders_get_boosters_three_to_eight_weeks_apart(demo):
    assert one(demo, "select count(*) from marts.treatment_series where series_kind = 'booster'") > 1000
    assert (
        21
        <= one(demo, "select median(booster_interval_days) from marts.treatment_series where series_kind = 'booster'")
        <= 70
    )


def test_the_awkward_cases_are_all_present(demo):
    statuses = {r["status"] for r in demo.rows("select distinct status from marts.series_outcomes")}
    assert {"no_baseline", "no_follow_up", "evaluable"} <= statuses
    reasons = {r["reason"] for r in demo.rows("select distinct reason from quarantine.rejected_rows")}
    assert {
        "unparseable_timestamp",
        "score_out_of_range",
        "unknown_instrument",
        "unknown_patient",
        "missing_field",
        "future_timestamp",
        "value_out_of_range",
    } <= reasons
    assert one(demo, "select sum(duplicates_removed) from quarantine.file_accounts") > 0
    assert one(demo, "select count(*) from staging.assessments where score_source = 'items'") > 0
    assert one(demo, "select count(*) from staging.assessments where has_suicidality_flag") > 0
    assert one(demo, "select count(distinct instrument) from staging.assessments") >= 5
    assert (
        one(
            demo,
            "select avg(n) from (select count(distinct instrument) n from staging.assessments group by patient_id)",
        )
        > 1.3
    )
    # Same-day scores on both sides of an infusion.
    assert (
        one(
            demo,
            """
        select count(*) from staging.infusions i
        where exists (select 1 from staging.assessments a where a.patient_id = i.patient_id
                      and a.administered_at::date = i.infused_at::date and a.administered_at < i.infused_at)
          and exists (select 1 from staging.assessments a where a.patient_id = i.patient_id
                      and a.administered_at::date = i.infused_at::date and a.administered_at > i.infused_at)
    """,
        )
        > 0
    )


def test_exports_mix_date_only_and_date_time_stamps():
    frames = inbox_frames(500, 4, 1, END, 2.0)
    stamps = frames["assessments.csv"]["administered_at"]
    assert stamps.str.contains("T").any() and (~stamps.str.contains("T")).any()


def test_nothing_is_dated_on_or_after_the_end_date_but_the_deliberate_future_rows():
    frames = inbox_frames(500, 4, 1, END, 2.0)
    deliberate = END + timedelta(days=400)
    for name, column in (("infusions.csv", "infused_at"), ("assessments.csv", "administered_at")):
        dates = frames[name][column].str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).drop_nulls()
        assert set(dates.filter(dates >= END).to_list()) <= {deliberate}


def test_a_large_inbox_is_written_a_chunk_of_patients_at_a_time_with_one_header_and_every_patient_once(
    tmp_path, monkeypatch
):
    import polars as pl

    from pipelines.demo import generator

    # The first chunk on its own: 120 patients are one chunk at any chunk size of 120 or more.
    write_inbox(tmp_path / "first", patients=120, clinics=4, seed=5, end_date=END, years=2.0)
    monkeypatch.setattr(generator, "CHUNK_PATIENTS", 120)  # 300 patients: chunks of 120, 120 and 60
    counts = write_inbox(tmp_path / "chunked", patients=300, clinics=4, seed=5, end_date=END, years=2.0)
    patients = pl.read_csv(tmp_path / "chunked" / "patients.csv", infer_schema=False)
    assert patients["patient_id"].to_list() == [f"PT{k:07d}" for k in range(1, 301)]
    assert counts["patients.csv"] == 300 and counts["clinics.csv"] == 4
    assert (tmp_path / "chunked" / "clinics.csv").read_text() == (tmp_path / "first" / "clinics.csv").read_text()
    for name in ("patients.csv", "infusions.csv", "assessments.csv"):
        lines = (tmp_path / "chunked" / name).read_text().splitlines()
        first = (tmp_path / "first" / name).read_text().splitlines()
        assert sum(line.startswith("patient_id,") for line in lines) == 1  # the header once
        assert len(lines) == counts[name] + 1
        # A first chunk keeps the seed's random stream: the inbox of up to one chunk is what it was unchunked,
        # and it opens the chunked file.
        assert lines[: len(first)] == first
        # The later chunks carry patients of their own, not copies of the first chunk's.
        later_ids = {line.split(",")[0] for line in lines[len(first) :]}
        assert later_ids and all(
            identifier > "PT0000120" or not identifier.startswith("PT") for identifier in later_ids
        )
