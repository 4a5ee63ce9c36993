"""Shared spec §10.2-10.4, hand-computed: remission eligibility, reliable change and recovery, early non-improvement."""

from tests.outcomes.helpers import assessment_frame, infusion_frame, outcome

INDUCTION = infusion_frame("2026-01-05", "2026-01-07", "2026-01-09")  # ends 2026-01-09
# Six infusions: the pre-infusion score of infusion 5 (2026-01-13) is the first after 4 infusions.
SIX = infusion_frame("2026-01-05", "2026-01-07", "2026-01-09", "2026-01-11", "2026-01-13", "2026-01-15")


# §10.2 Remission eligibility


def test_a_baseline_above_the_remission_cut_off_is_eligible_for_remission():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 5), ("phq9", "2026-01-12", 2)]))
    assert row["is_remission_eligible"] is True
    assert row["is_remitter"] is True


def test_a_baseline_at_the_remission_cut_off_is_a_remitter_but_not_eligible():
    # PHQ-9 remission is <= 4: a baseline of 4 was in remission before the series began.
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 4), ("phq9", "2026-01-12", 3)]))
    assert row["is_remitter"] is True
    assert row["is_remission_eligible"] is False


def test_a_series_that_is_not_evaluable_is_not_eligible_for_remission():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20)]))
    assert row["status"] == "no_follow_up"
    assert row["is_remission_eligible"] is False


# §10.3 Reliable change and recovery


def test_end_change_is_end_score_minus_baseline():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 18), ("phq9", "2026-01-12", 11)]))
    assert row["end_change"] == -7


def test_a_phq9_drop_of_exactly_six_points_is_a_reliable_improvement_and_five_is_not():
    six = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 18), ("phq9", "2026-01-12", 12)]))
    assert (six["is_reliable_improvement"], six["is_reliable_deterioration"]) == (True, False)
    five = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 18), ("phq9", "2026-01-12", 13)]))
    assert (five["is_reliable_improvement"], five["is_reliable_deterioration"]) == (False, False)


def test_a_gad7_rise_of_four_points_is_a_reliable_deterioration():
    row = outcome(
        INDUCTION, assessment_frame([("gad7", "2026-01-05", 10), ("gad7", "2026-01-12", 14)]), instrument="gad7"
    )
    assert (row["is_reliable_improvement"], row["is_reliable_deterioration"]) == (False, True)


def test_reliable_recovery_needs_a_case_at_baseline_a_non_case_at_the_end_and_a_reliable_improvement():
    # PHQ-9: caseness >= 10, reliable change 6.
    recovered = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 15), ("phq9", "2026-01-12", 9)]))
    assert recovered["is_reliable_recovery"] is True
    # 9 -> 3: improved by 6 but was never a case.
    never_a_case = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 9), ("phq9", "2026-01-12", 3)]))
    assert (never_a_case["is_reliable_improvement"], never_a_case["is_reliable_recovery"]) == (True, False)
    # 12 -> 7: below caseness but only 5 points better.
    not_reliable = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 12), ("phq9", "2026-01-12", 7)]))
    assert not_reliable["is_reliable_recovery"] is False
    # 20 -> 10: 10 points better but still a case (10 is at the caseness threshold).
    still_a_case = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-12", 10)]))
    assert (still_a_case["is_reliable_improvement"], still_a_case["is_reliable_recovery"]) == (True, False)


def test_pain_nrs_reliable_change_is_two_points():
    row = outcome(
        INDUCTION,
        assessment_frame([("nrs_pain", "2026-01-05", 7), ("nrs_pain", "2026-01-12", 3)]),
        instrument="nrs_pain",
    )
    assert (row["end_change"], row["is_reliable_improvement"], row["is_reliable_recovery"]) == (-4, True, True)


def test_a_two_point_change_of_decimal_pain_scores_is_reliable_although_floating_point_makes_it_short():
    # 0.3 - 2.3 and 4.1 - 2.1 are exactly -2 and 2, but -1.9999999999999998 and 1.9999999999999996 in binary
    # floating point; 0.4 - 2.3 is -1.9: not reliable.
    def change(baseline: float, end: float) -> tuple:
        scores = assessment_frame([("nrs_pain", "2026-01-05", baseline), ("nrs_pain", "2026-01-12", end)])
        row = outcome(INDUCTION, scores, instrument="nrs_pain")
        return row["is_reliable_improvement"], row["is_reliable_deterioration"]

    assert change(2.3, 0.3) == (True, False)
    assert change(2.1, 4.1) == (False, True)
    assert change(2.3, 0.4) == (False, False)
    assert change(2.0, 3.9) == (False, False)


def test_instruments_without_a_reliable_change_have_no_reliable_change_outcomes():
    row = outcome(
        INDUCTION, assessment_frame([("madrs", "2026-01-05", 30), ("madrs", "2026-01-12", 5)]), instrument="madrs"
    )
    assert row["is_responder"] is True
    assert [row[c] for c in ("end_change", "is_reliable_improvement", "is_reliable_recovery")] == [None, None, None]


def test_reliable_change_outcomes_are_null_when_the_series_is_not_evaluable():
    row = outcome(INDUCTION, assessment_frame([("phq9", "2026-01-05", 20)]))
    assert [row[c] for c in ("end_change", "is_reliable_improvement", "is_reliable_deterioration")] == [None] * 3


# §10.4 Early non-improvement


def test_the_early_check_is_the_first_score_after_four_infusions():
    # Baseline 20. After 3 infusions (01-11): 19. After 4 (01-13): 17 = -15%, the early check. After 5: 8.
    scores = [
        ("phq9", "2026-01-05", 20),
        ("phq9", "2026-01-11", 19),
        ("phq9", "2026-01-13", 17),
        ("phq9", "2026-01-15", 8),
        ("phq9", "2026-01-20", 9),
    ]
    row = outcome(SIX, assessment_frame(scores))
    assert row["is_early_non_improver"] is True  # -15% is less than a 20% improvement
    assert row["is_responder"] is True  # 20 -> 9 is -55%: the flag was wrong for this series


def test_an_early_improvement_of_exactly_twenty_percent_is_not_flagged():
    scores = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-13", 16), ("phq9", "2026-01-20", 15)]
    assert outcome(SIX, assessment_frame(scores))["is_early_non_improver"] is False


def test_an_early_improvement_of_exactly_twenty_percent_of_a_decimal_pain_score_is_not_flagged():
    # 5.5 -> 4.4 is -20%, but -19.999999999999996% in binary floating point; 5.5 -> 4.5 is -18%: flagged.
    def flagged(early: float) -> bool:
        scores = [("nrs_pain", "2026-01-05", 5.5), ("nrs_pain", "2026-01-13", early), ("nrs_pain", "2026-01-20", 4.0)]
        return outcome(SIX, assessment_frame(scores), instrument="nrs_pain")["is_early_non_improver"]

    assert flagged(4.4) is False
    assert flagged(4.5) is True


def test_the_early_check_settings_are_configurable():
    # After 3 infusions (01-11): 20 -> 15 is -25%. With a check after 3 infusions and 30% wanted, it is flagged.
    scores = [("phq9", "2026-01-05", 20), ("phq9", "2026-01-11", 15), ("phq9", "2026-01-20", 15)]
    row = outcome(SIX, assessment_frame(scores), early_check_infusions=3, early_improvement_pct=30)
    assert row["is_early_non_improver"] is True
    # By default the check is the first score after 4 infusions, 01-20 (after the series): -25%, not flagged.
    assert outcome(SIX, assessment_frame(scores))["is_early_non_improver"] is False


def test_a_score_after_the_series_counts_as_the_early_check_when_none_came_before():
    # Four infusions; the only follow-up is after the series (4 infusions received), in the response window.
    four = infusion_frame("2026-01-05", "2026-01-07", "2026-01-09", "2026-01-11")
    row = outcome(four, assessment_frame([("phq9", "2026-01-05", 20), ("phq9", "2026-01-14", 19)]))
    assert row["is_early_non_improver"] is True


def test_a_booster_has_no_early_check():
    # Series 2 starts 20 days after series 1 ends: a booster.
    infusions = infusion_frame(
        "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-28", "2026-01-29", "2026-01-30", "2026-01-31"
    )
    scores = [("phq9", "2026-01-28", 20), ("phq9", "2026-02-01", 19)]
    row = outcome(infusions, assessment_frame(scores), series_number=2)
    assert row["series_kind"] == "booster" and row["status"] == "evaluable"
    assert row["is_early_non_improver"] is None


def test_a_series_that_is_not_evaluable_has_no_early_check():
    # The early check exists (after 4 infusions) but the response window has no score: no_follow_up is impossible
    # then, so the series lacks a baseline instead.
    scores = [("phq9", "2026-01-13", 17), ("phq9", "2026-01-20", 15)]
    row = outcome(SIX, assessment_frame(scores))
    assert row["status"] == "no_baseline"
    assert row["is_early_non_improver"] is None
