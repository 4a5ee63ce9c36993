"""Shared spec §4: relief duration of responders, from the last infusion to relapse."""

from tests.outcomes.helpers import assessment_frame, infusion_frame, outcome

INDUCTION = infusion_frame("2026-01-05", "2026-01-07", "2026-01-09T11:00:00")  # ends 2026-01-09 11:00


def responder_with(*follow_ups: tuple[str, float]) -> dict:
    rows = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-10", 8), *[("phq9", at, s) for at, s in follow_ups]]
    return outcome(INDUCTION, assessment_frame(rows))


def test_relief_ends_at_the_first_follow_up_that_no_longer_meets_response():
    row = responder_with(("2026-02-01", 9), ("2026-02-20", 12), ("2026-03-01", 8))
    assert (row["relief_status"], row["relief_days"]) == ("relapsed", 42)


def test_relief_is_censored_when_the_last_score_still_responds():
    row = responder_with(("2026-02-01", 9), ("2026-02-20", 10))
    assert (row["relief_status"], row["relief_days"]) == ("censored", 42)


def test_relief_counts_calendar_days_whatever_the_hours():
    # Last infusion 2026-01-09 11:00, relapse 2026-01-30 01:00: 20.6 days by the clock, 21 by the calendar.
    row = responder_with(("2026-01-16T08:00:00", 8), ("2026-01-30T01:00:00", 12))
    assert (row["relief_status"], row["relief_days"]) == ("relapsed", 21)


def test_relief_starts_after_the_last_infusion_not_before():
    # The 2026-01-09 00:00 score precedes the last infusion (11:00) and cannot be a relapse.
    rows = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-09", 14), ("phq9", "2026-01-12", 8)]
    row = outcome(INDUCTION, assessment_frame(rows))
    assert (row["relief_status"], row["relief_days"]) == ("censored", 3)


def test_a_responder_whose_only_follow_up_preceded_the_last_infusion_has_no_relief_days():
    rows = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-09T10:00:00", 8)]
    row = outcome(INDUCTION, assessment_frame(rows))
    assert row["is_responder"] is True
    assert (row["relief_status"], row["relief_days"]) == ("no_post_series_follow_up", None)


def test_non_responders_have_no_relief():
    rows = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-12", 15), ("phq9", "2026-02-12", 16)]
    row = outcome(INDUCTION, assessment_frame(rows))
    assert (row["relief_status"], row["relief_days"]) == (None, None)
