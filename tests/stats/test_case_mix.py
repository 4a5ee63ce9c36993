"""Spec §10.5: indirect standardisation and Byar's interval, checked on published examples and scipy's exact limits."""

from datetime import datetime

import polars as pl
import pytest
from scipy.stats import chi2

from pipelines.stats.case_mix import case_mix_comparison_from_series_outcomes, expected_from_reference
from pipelines.stats.intervals import byar_bounds


def byar(counts: list[int]) -> list[tuple[float, float]]:
    low, high = byar_bounds(pl.col("observed"))
    return pl.DataFrame({"observed": counts}).select(low.alias("low"), high.alias("high")).rows()


def test_indirect_standardisation_matches_the_iussp_worked_example():
    # IUSSP, Population Analysis for Policy and Programmes 101, session 6 "Indirect standardisation"
    # (papp.iussp.org/sessions/papp101_s06/PAPP101_s06_080_020.html): Ecuador's population (thousands) by age at
    # Sweden's death rates (per 1000) gives 3,374 + 7,726 + 31,461 = 42,561 expected deaths; 64,700 were observed,
    # an SMR of 1.52.
    study = pl.LazyFrame(
        {
            "area": ["Ecuador"] * 3,
            "age": ["0-29", "30-59", "60+"],
            "count": [7_498_000, 3_219_000, 742_000],
            "observed": [16_700, 11_900, 36_100],
        }
    )
    reference = pl.LazyFrame({"age": ["0-29", "30-59", "60+"], "rate": [0.45 / 1000, 2.4 / 1000, 42.4 / 1000]})
    row = expected_from_reference(study, reference, ["age"], ["area"]).collect().row(0, named=True)
    assert row["observed"] == 64_700
    assert row["expected"] == pytest.approx(42_560.5)
    assert round(row["observed"] / row["expected"], 2) == 1.52


def test_byars_limits_are_within_a_fifth_of_a_percent_of_the_exact_poisson_limits_from_ten_events():
    # Public Health England, Technical Guide: Confidence Intervals (2018), appendix 1: Byar's method is within 0.2%
    # of the exact (chi-squared) limits for counts of 10 or more. The exact limits here are scipy's chi2 quantiles.
    counts = [10, 11, 20, 65, 389, 1045, 25_000]
    for count, (low, high) in zip(counts, byar(counts), strict=True):
        exact_low, exact_high = chi2.ppf(0.025, 2 * count) / 2, chi2.ppf(0.975, 2 * count + 2) / 2
        assert low == pytest.approx(exact_low, rel=0.002)
        assert high == pytest.approx(exact_high, rel=0.002)


def test_byars_limits_of_sixty_five_events_by_hand():
    # O = 65, z = 1.959964: 65 (1 - 1/585 - z/(3 sqrt 65))^3 and 66 (1 - 1/594 + z/(3 sqrt 66))^3.
    [(low, high)] = byar([65])
    assert (round(low, 3), round(high, 3)) == (50.163, 82.849)


def test_no_event_has_a_lower_limit_of_zero():
    [(low, high)] = byar([0])
    assert low == 0.0 and high == pytest.approx(3.668, abs=0.001)


def series(clinic: str, indication: str, baseline: float, responded: bool, instrument: str = "phq9") -> dict:
    return {
        "clinic_id": clinic,
        "primary_indication": indication,
        "instrument": instrument,
        "series_kind": "induction",
        "status": "evaluable",
        "baseline_score": baseline,
        "is_responder": responded,
        "score_min": 0.0,
        "score_max": 27.0 if instrument == "phq9" else 10.0,
        "series_start_at": datetime(2026, 1, 1),
    }


def test_a_clinic_that_treats_harder_cases_is_judged_against_their_network_rate():
    # Severe PHQ-9 (20-27): network 2 of 8 respond (25%). Moderate (10-14): 6 of 8 (75%).
    # Clinic A treats 6 severe (1 responds) and 2 moderate (2 respond): crude 3/8 = 37.5%.
    # Expected = 6 x 0.25 + 2 x 0.75 = 3.0, so O/E = 1.0: A does as well as its patients predict.
    # Clinic B treats 2 severe (1 responds) and 6 moderate (4 respond): crude 5/8 = 62.5%, expected 0.5 + 4.5 = 5.0.
    rows = (
        [series("A", "depression", 22, r) for r in [True] + [False] * 5]
        + [series("A", "depression", 12, True)] * 2
        + [series("B", "depression", 22, r) for r in (True, False)]
        + [series("B", "depression", 12, r) for r in [True] * 4 + [False] * 2]
    )
    result = case_mix_comparison_from_series_outcomes(pl.LazyFrame(rows)).collect()
    by_clinic = {row["clinic_id"]: row for row in result.iter_rows(named=True)}
    a, b = by_clinic["A"], by_clinic["B"]
    assert (a["observed_responders"], a["expected_responders"], a["observed_expected_ratio"]) == (3, 3.0, 1.0)
    assert (b["observed_responders"], b["expected_responders"], b["observed_expected_ratio"]) == (5, 5.0, 1.0)
    assert (a["crude_response_rate"], b["crude_response_rate"], a["network_response_rate"]) == (0.375, 0.625, 0.5)
    [(low, high)] = byar([3])
    assert a["ratio_ci_low"] == pytest.approx(low / 3.0) and a["ratio_ci_high"] == pytest.approx(high / 3.0)


def test_strata_split_by_indication_and_by_thirds_of_the_range_for_other_instruments():
    # Pain NRS 0-10: thirds [0, 3.33), [3.33, 6.67), [6.67, 10]. Baselines 7 and 9 share the top third, 5 does not.
    # Top third, crps: network 1 of 2 respond. Middle third, crps: 0 of 1. Top third, fibromyalgia: 1 of 1.
    rows = [
        series("A", "crps", 7, True, "nrs_pain"),
        series("B", "crps", 9, False, "nrs_pain"),
        series("A", "crps", 5, False, "nrs_pain"),
        series("B", "fibromyalgia", 8, True, "nrs_pain"),
    ]
    result = case_mix_comparison_from_series_outcomes(pl.LazyFrame(rows)).collect()
    expected = dict(zip(result["clinic_id"], result["expected_responders"], strict=True))
    # A: 1 x 0.5 (top crps) + 1 x 0 (middle crps) = 0.5. B: 1 x 0.5 + 1 x 1.0 = 1.5.
    assert expected == {"A": 0.5, "B": 1.5}
