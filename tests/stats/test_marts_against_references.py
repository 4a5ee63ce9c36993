"""The statistics marts of the demo cohort, recomputed from marts.series_outcomes with lifelines and statsmodels."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

COHORTS = [
    ("network", "all", "phq9", "induction"),
    ("network", "all", "nrs_pain", "induction"),
    ("clinic", "austin", "phq9", "booster"),
    ("indication", "crps", "nrs_pain", "induction"),
]
FILTERS = {"network": "true", "clinic": "clinic_id = ?", "indication": "primary_indication = ?"}


def rows(warehouse, sql, *params):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, list(params))
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]


def cohort_outcomes(warehouse, dimension, value, instrument, kind):
    params = [value] if dimension != "network" else []
    return rows(
        warehouse,
        f"select * from marts.series_outcomes where {FILTERS[dimension]} and instrument = ? and series_kind = ?",
        *params,
        instrument,
        kind,
    )


@pytest.mark.parametrize("cohort", COHORTS, ids=["-".join(c) for c in COHORTS])
def test_response_rates_match_statsmodels_wilson_on_the_demo_cohort(demo_warehouse, cohort):
    outcomes = [r for r in cohort_outcomes(demo_warehouse, *cohort) if r["status"] == "evaluable"]
    responders = sum(r["is_responder"] for r in outcomes)
    eligible = [r for r in outcomes if r["is_remission_eligible"]]  # spec §10.2
    remitters = sum(r["is_remitter"] for r in eligible)
    improved = sum(bool(r["is_reliable_improvement"]) for r in outcomes)
    with_reliable_change = sum(r["is_reliable_improvement"] is not None for r in outcomes)
    [mart] = rows(
        demo_warehouse,
        "select * from marts.response_rates where dimension = ? and dimension_value = ? "
        "and instrument = ? and series_kind = ?",
        *cohort,
    )
    assert (mart["evaluable_count"], mart["responder_count"], mart["remitter_count"]) == (
        len(outcomes),
        responders,
        remitters,
    )
    assert (mart["response_ci_low"], mart["response_ci_high"]) == pytest.approx(
        proportion_confint(responders, len(outcomes), method="wilson"), abs=1e-12
    )
    assert mart["remission_eligible_count"] == len(eligible)
    assert (mart["remission_ci_low"], mart["remission_ci_high"]) == pytest.approx(
        proportion_confint(remitters, len(eligible), method="wilson"), abs=1e-12
    )
    assert (mart["reliable_change_count"], mart["reliable_improvement_count"]) == (with_reliable_change, improved)
    if with_reliable_change:
        assert (mart["reliable_improvement_ci_low"], mart["reliable_improvement_ci_high"]) == pytest.approx(
            proportion_confint(improved, with_reliable_change, method="wilson"), abs=1e-12
        )


@pytest.mark.parametrize("cohort", COHORTS, ids=["-".join(c) for c in COHORTS])
def test_relief_curves_and_medians_match_lifelines_on_the_demo_cohort(demo_warehouse, cohort):
    responders = [r for r in cohort_outcomes(demo_warehouse, *cohort) if r["relief_days"] is not None]
    fit = KaplanMeierFitter().fit(
        [r["relief_days"] for r in responders], [r["relief_status"] == "relapsed" for r in responders]
    )
    curve = rows(
        demo_warehouse,
        "select * from marts.relief_survival where dimension = ? and dimension_value = ? "
        "and instrument = ? and series_kind = ? order by day",
        *cohort,
    )
    days = [point["day"] for point in curve]
    assert [p["survival"] for p in curve] == pytest.approx(fit.survival_function_.loc[days].iloc[:, 0].tolist())
    band = fit.confidence_interval_.loc[days]
    assert [p["ci_low"] for p in curve] == pytest.approx(band.iloc[:, 0].tolist(), abs=1e-9)
    assert [p["ci_high"] for p in curve] == pytest.approx(band.iloc[:, 1].tolist(), abs=1e-9)

    [summary] = rows(
        demo_warehouse,
        "select * from marts.relief_summary where dimension = ? and dimension_value = ? "
        "and instrument = ? and series_kind = ?",
        *cohort,
    )
    low, high = median_survival_times(fit.confidence_interval_).values[0]
    expected_median = None if np.isinf(fit.median_survival_time_) else fit.median_survival_time_
    assert summary["median_relief_days"] == expected_median
    assert summary["median_ci_low"] == (None if np.isinf(low) else low)
    assert summary["median_ci_high"] == (None if np.isinf(high) else high)
    assert summary["survival_28d"] == pytest.approx(fit.predict(28))
    assert summary["responder_count"] == len(responders)


def test_trajectory_intervals_match_scipys_t_interval_on_the_demo_cohort(demo_warehouse):
    changes = [
        r["pct_change"]
        for r in rows(
            demo_warehouse,
            "select pct_change from marts.assessment_outcomes where instrument = 'phq9' "
            "and series_kind = 'induction' and is_in_response_window and pct_change is not null "
            "and infusions_received = 3",
        )
    ]
    [point] = rows(
        demo_warehouse,
        "select * from marts.trajectories where dimension = 'network' "
        "and instrument = 'phq9' and infusions_received = 3",
    )
    assert point["score_count"] == len(changes)
    assert point["mean_pct_change"] == pytest.approx(np.mean(changes))
    expected = stats.t.interval(0.95, len(changes) - 1, loc=np.mean(changes), scale=stats.sem(changes))
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(expected)


@pytest.mark.parametrize("cohort", COHORTS, ids=["-".join(c) for c in COHORTS])
def test_end_change_quantiles_match_numpys_linear_percentiles_on_the_demo_cohort(demo_warehouse, cohort):
    dimension, value, instrument, kind = cohort
    changes = [
        r["end_pct_change"]
        for r in cohort_outcomes(demo_warehouse, dimension, value, instrument, kind)
        if r["status"] == "evaluable" and r["end_pct_change"] is not None
    ]
    points = rows(
        demo_warehouse,
        "select quantile, end_pct_change from marts.end_change_quantiles where dimension = ? and dimension_value = ? "
        "and instrument = ? and series_kind = ? order by quantile",
        dimension,
        value,
        instrument,
        kind,
    )
    assert len(points) == 20 and len(changes) > 20
    levels = [p["quantile"] for p in points]
    assert levels == pytest.approx([(step + 0.5) / 20 for step in range(20)])
    expected = np.percentile(changes, [100 * level for level in levels], method="linear")
    assert [p["end_pct_change"] for p in points] == pytest.approx(list(expected))
