"""Spec §10.2-10.4 and §10.6 in response_rates: each rate's denominator, and the provider and dose groupings."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from pipelines.stats.cohorts import response_rates_from_series_outcomes


def series(**values) -> dict:
    row = {
        "clinic_id": "austin",
        "primary_indication": "depression",
        "series_start_at": datetime(2026, 3, 2),
        "provider_id": "dr-a",
        "dose_band": "0.5-<0.75",
        "instrument": "phq9",
        "series_kind": "induction",
        "status": "evaluable",
        "baseline_score": 20.0,
        "is_responder": False,
        "is_remission_eligible": True,
        "is_remitter": False,
        "is_rapid_response": False,
        "is_completed_induction": True,
        "is_reliable_improvement": False,
        "is_reliable_deterioration": False,
        "is_reliable_recovery": False,
        "is_early_non_improver": None,
        "caseness_min": 10.0,
    }
    return row | values


ROWS = [
    # Remission: three eligible series, two remit; a fourth remits from a baseline of 3 (not eligible).
    series(is_remitter=True, is_responder=True, is_reliable_improvement=True, is_reliable_recovery=True),
    series(is_remitter=True, is_responder=True, is_reliable_improvement=True, is_reliable_recovery=True),
    series(is_early_non_improver=True, is_reliable_deterioration=True),
    series(baseline_score=3.0, is_remission_eligible=False, is_remitter=True, is_reliable_improvement=False),
    # Early check: a flagged non-responder above, a flagged responder and an unflagged non-responder here.
    series(is_early_non_improver=True, is_responder=True, provider_id=None, dose_band="unknown"),
    series(is_early_non_improver=False, provider_id="dr-b", dose_band=">=1.0"),
    # Not evaluable: counted nowhere.
    series(status="no_follow_up", is_responder=None, is_remission_eligible=False, is_remitter=None),
]


@pytest.fixture(scope="module")
def rates() -> dict[tuple[str, str], dict]:
    frame = response_rates_from_series_outcomes(pl.LazyFrame(ROWS)).collect()
    return {(r["dimension"], r["dimension_value"]): r for r in frame.iter_rows(named=True)}


def test_remission_counts_only_series_whose_baseline_was_above_the_cut_off(rates):
    network = rates[("network", "all")]
    assert (network["evaluable_count"], network["remission_eligible_count"], network["remitter_count"]) == (6, 5, 2)
    assert network["remission_rate"] == pytest.approx(2 / 5)


def test_reliable_recovery_counts_over_series_that_were_cases_at_baseline(rates):
    network = rates[("network", "all")]
    assert network["reliable_change_count"] == 6
    assert (network["reliable_improvement_count"], network["reliable_deterioration_count"]) == (2, 1)
    # The baseline of 3 is below PHQ-9 caseness (10): five cases, two recovered.
    assert (network["case_at_baseline_count"], network["reliable_recovery_count"]) == (5, 2)
    assert network["reliable_recovery_rate"] == pytest.approx(0.4)


def test_the_early_checks_predictive_value_and_sensitivity_use_the_series_with_an_early_check(rates):
    network = rates[("network", "all")]
    assert network["early_checked_count"] == 3
    # Flagged: 2, of whom 1 did not respond (PPV 1/2). Non-responders with a check: 2, of whom 1 flagged (1/2).
    assert (network["early_non_improver_count"], network["early_flagged_non_responder_count"]) == (2, 1)
    assert network["early_checked_non_responder_count"] == 2
    assert (network["early_ppv_rate"], network["early_sensitivity_rate"]) == (0.5, 0.5)
    assert network["early_ppv_ci_low"] < 0.5 < network["early_ppv_ci_high"]


def test_series_are_grouped_by_provider_and_dose_band_in_the_network_and_in_their_clinic(rates):
    assert rates[("provider", "dr-a")]["evaluable_count"] == 4
    assert rates[("provider", "not recorded")]["evaluable_count"] == 1
    assert rates[("clinic_provider", "austin / dr-b")]["evaluable_count"] == 1
    assert rates[("dose_band", "0.5-<0.75")]["evaluable_count"] == 4
    assert rates[("clinic_dose_band", "austin / unknown")]["evaluable_count"] == 1
