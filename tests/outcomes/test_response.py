"""Shared spec §4: baselines, follow-up windows, response, remission and status per series and instrument."""

from datetime import datetime

import pytest

from tests.outcomes.helpers import assessment_frame, engine, infusion_frame, outcome

INDUCTION = infusion_frame("2026-01-05", "2026-01-07", "2026-01-09")  # ends 2026-01-09


def test_baseline_is_the_latest_score_at_or_before_the_first_infusion():
    row = outcome(
        INDUCTION,
        assessment_frame([("phq9", "2026-01-01", 22), ("phq9", "2026-01-05", 20), ("phq9", "2026-01-12", 10)]),
    )
    assert row["baseline_score"] == 20
    assert row["baseline_at"] == datetime(2026, 1, 5)


def test_a_score_minutes_after_the_first_infusion_is_a_follow_up_not_the_baseline():
    infusions = infusion_frame("2026-01-05T10:00:00")
    row = outcome(
        infusions, assessment_frame([("phq9", "2026-01-05T09:30:00", 20), ("phq9", "2026-01-05T10:30:00", 9)])
    )
    assert (row["baseline_score"], row["end_score"]) == (20, 9)


def test_baseline_thirty_days_before_the_start_date_counts_and_thirty_one_does_not():
    thirty = outcome(INDUCTION, assessment_frame([("phq9", "2025-12-06T23:00:00", 20), ("phq9", "2026-01-12", 9)]))
    assert thirty["status"] == "evaluable"
    thirty_one = outcome(INDUCTION, assessment_frame([("phq9", "2025-12-05", 20), ("phq9", "2026-01-12", 9)]))
    assert thirty_one["status"] == "no_baseline"
    assert thirty_one["baseline_score"] is None


def test_baseline_window_days_is_configurable():
    row = outcome(
        INDUCTION, assessment_frame([("phq9", "2025-12-05", 20), ("phq9", "2026-01-12", 9)]), baseline_window_days=45
    )
    assert row["status"] == "evaluable"


def test_baseline_at_the_instrument_floor_is_not_evaluable():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 0), ("phq9", "2026-01-12", 0)]))
    assert row["status"] == "baseline_at_floor"
    assert row["baseline_score"] == 0
    assert row["is_responder"] is None and row["end_score"] is None


def test_no_baseline_is_reported_before_no_follow_up():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2025-10-01", 20)]))
    assert row["status"] == "no_baseline"


def test_series_without_a_score_in_the_response_window_has_no_follow_up():
    # Series ends 2026-01-09; 2026-01-24 is 15 days later.
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-24", 5)]))
    assert row["status"] == "no_follow_up"
    assert row["baseline_score"] == 20
    assert (row["end_score"], row["is_responder"], row["is_rapid_response"]) == (None, None, None)


def test_response_window_ends_fourteen_calendar_days_after_the_series_end_date():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-23T23:59:00", 8)]))
    assert row["end_score"] == 8


def test_response_window_days_is_configurable():
    row = outcome(
        INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-24", 8)]), response_window_days=28
    )
    assert row["end_score"] == 8


def test_end_score_is_the_last_in_the_window_and_best_score_the_lowest():
    row = outcome(
        INDUCTION,
        assessment_frame(
            [
                ("phq9", "2026-01-05", 20),
                ("phq9", "2026-01-07", 12),
                ("phq9", "2026-01-09", 6),
                ("phq9", "2026-01-20", 11),
            ]
        ),
    )
    assert (row["end_score"], row["end_pct_change"]) == (11, -45.0)
    assert (row["best_score"], row["best_pct_change"]) == (6, -70.0)


def test_responder_is_judged_on_the_end_score_not_the_best():
    row = outcome(
        INDUCTION,
        assessment_frame(
            [
                ("phq9", "2026-01-05", 20),
                ("phq9", "2026-01-09", 6),
                ("phq9", "2026-01-20", 11),
            ]
        ),
    )
    assert row["is_responder"] is False
    assert row["first_response_at"] == datetime(2026, 1, 9)  # met response on the way, lost it by the end
    assert row["relief_status"] is None and row["relief_days"] is None


def test_exactly_fifty_percent_reduction_meets_response():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 18), ("phq9", "2026-01-12", 9)]))
    assert row["is_responder"] is True


def test_just_under_fifty_percent_reduction_does_not_meet_response():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 19), ("phq9", "2026-01-12", 10)]))
    assert row["end_pct_change"] == pytest.approx(-47.368, abs=1e-3)
    assert row["is_responder"] is False


def test_exactly_thirty_percent_pain_reduction_meets_response_on_a_decimal_scale():
    # 65.5 -> 45.85 on VAS is a 30% drop; naive floating point gives -29.999999.
    row = outcome(
        INDUCTION,
        assessment_frame([("vas_pain", "2026-01-05", 65.5), ("vas_pain", "2026-01-12", 45.85)]),
        instrument="vas_pain",
    )
    assert row["is_responder"] is True


def test_remission_is_a_score_at_or_below_the_instrument_cut_off():
    at_cut = outcome(
        INDUCTION, assessment_frame([("gad7", "2026-01-05", 15), ("gad7", "2026-01-12", 4)]), instrument="gad7"
    )
    above = outcome(
        INDUCTION, assessment_frame([("gad7", "2026-01-05", 15), ("gad7", "2026-01-12", 5)]), instrument="gad7"
    )
    assert (at_cut["is_remitter"], above["is_remitter"]) == (True, False)


def test_pcl5_response_is_a_thirty_percent_reduction():
    row = outcome(
        INDUCTION, assessment_frame([("pcl5", "2026-01-05", 50), ("pcl5", "2026-01-12", 35)]), instrument="pcl5"
    )
    assert (row["is_responder"], row["is_remitter"]) == (True, False)


def test_a_date_only_score_on_an_infusion_day_counts_before_that_infusion():
    infusions = infusion_frame("2026-01-05T10:00:00", "2026-01-07T10:00:00", "2026-01-09T10:00:00")
    follow_ups, _ = engine(
        infusions,
        assessment_frame(
            [("phq9", "2026-01-05T09:00:00", 20), ("phq9", "2026-01-07", 16), ("phq9", "2026-01-09T14:00:00", 9)]
        ),
    )
    assert [(f["administered_at"].day, f["infusions_received"]) for f in follow_ups] == [(7, 1), (9, 3)]


def test_first_response_records_how_many_infusions_it_took():
    row = outcome(
        INDUCTION,
        assessment_frame(
            [
                ("phq9", "2026-01-05", 20),
                ("phq9", "2026-01-07", 14),
                ("phq9", "2026-01-09", 9),
                ("phq9", "2026-01-12", 8),
            ]
        ),
    )
    # 2026-01-09 00:00 precedes that day's infusion: two infusions received.
    assert (row["first_response_at"], row["infusions_to_response"]) == (datetime(2026, 1, 9), 2)
    assert row["is_rapid_response"] is False


def test_response_after_one_infusion_is_rapid():
    row = outcome(
        INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-06", 10), ("phq9", "2026-01-12", 8)])
    )
    assert (row["infusions_to_response"], row["is_rapid_response"]) == (1, True)


def test_evaluable_series_never_have_null_booleans():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-12", 18)]))
    assert (row["is_responder"], row["is_remitter"], row["is_rapid_response"]) == (False, False, False)
    assert row["first_response_at"] is None and row["infusions_to_response"] is None


def test_the_score_at_the_next_series_start_ends_one_series_and_begins_the_next():
    infusions = infusion_frame("2026-01-05", "2026-01-07", "2026-02-10")
    _, rows = engine(
        infusions,
        assessment_frame(
            [
                ("phq9", "2026-01-05", 20),
                ("phq9", "2026-01-12", 8),
                ("phq9", "2026-02-10", 15),
                ("phq9", "2026-02-12", 7),
            ]
        ),
    )
    first, second = rows[(1, "phq9")], rows[(2, "phq9")]
    assert first["relief_status"] == "relapsed" and first["relief_days"] == 34
    assert second["baseline_score"] == 15 and second["end_score"] == 7


def test_every_series_and_instrument_pair_appears_even_when_not_evaluable():
    infusions = infusion_frame("2026-01-05", "2026-03-01")
    _, rows = engine(infusions, assessment_frame([("phq9", "2026-01-05", 20), ("gad7", "2026-03-01", 12)]))
    assert {k: r["status"] for k, r in rows.items()} == {
        (1, "gad7"): "no_baseline",
        (1, "phq9"): "no_follow_up",
        (2, "gad7"): "no_follow_up",
        (2, "phq9"): "no_baseline",
    }


def test_instruments_without_a_response_criterion_have_no_outcome_rows():
    _, rows = engine(INDUCTION, assessment_frame([("cadss", "2026-01-05", 20), ("cadss", "2026-01-12", 5)]))
    assert rows == {}
