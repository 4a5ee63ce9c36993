"""Kaplan-Meier against lifelines on the Freireich 6-MP leukaemia trial (Gehan 1965), in weeks of remission."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from pipelines.stats.survival import kaplan_meier, survival_summary

SIX_MP = [
    (6, 1),
    (6, 1),
    (6, 1),
    (6, 0),
    (7, 1),
    (9, 0),
    (10, 1),
    (10, 0),
    (11, 0),
    (13, 1),
    (16, 1),
    (17, 0),
    (19, 0),
    (20, 0),
    (22, 1),
    (23, 1),
    (25, 0),
    (32, 0),
    (32, 0),
    (34, 0),
    (35, 0),
]
PLACEBO = [(t, 1) for t in (1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23)]
ARMS = {"6-MP": SIX_MP, "placebo": PLACEBO}


@pytest.fixture(scope="module")
def curves() -> pl.DataFrame:
    rows = [(arm, t, bool(e)) for arm, data in ARMS.items() for t, e in data]
    observations = pl.LazyFrame(rows, schema=["arm", "duration", "is_event"], orient="row")
    return kaplan_meier(observations, ["arm"]).collect()


def lifelines_fit(arm: str) -> KaplanMeierFitter:
    data = ARMS[arm]
    return KaplanMeierFitter().fit([t for t, _ in data], [e for _, e in data])


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_survival_and_log_log_band_match_lifelines_at_every_time(curves, arm):
    fit = lifelines_fit(arm)
    ours = curves.filter(pl.col("arm") == arm)
    times = ours["duration"].to_numpy()
    assert ours["survival"].to_numpy() == pytest.approx(fit.survival_function_.loc[times].iloc[:, 0].to_numpy())
    band = fit.confidence_interval_.loc[times]
    assert ours["ci_low"].to_numpy() == pytest.approx(band.iloc[:, 0].to_numpy(), abs=1e-9)
    assert ours["ci_high"].to_numpy() == pytest.approx(band.iloc[:, 1].to_numpy(), abs=1e-9)
    assert ours["at_risk"].to_list() == fit.event_table.loc[times, "at_risk"].astype(int).tolist()


def test_medians_and_their_intervals_match_the_published_values_and_lifelines(curves):
    summary = {row["arm"]: row for row in survival_summary(curves.lazy(), ["arm"]).collect().to_dicts()}
    # Placebo: median 8 weeks, log(-log) 95% CI 4 to 11; 6-MP: median 23 weeks, upper bound not reached.
    assert (
        summary["placebo"]["median_relief_days"],
        summary["placebo"]["median_ci_low"],
        summary["placebo"]["median_ci_high"],
    ) == (8, 4, 11)
    assert (
        summary["6-MP"]["median_relief_days"],
        summary["6-MP"]["median_ci_low"],
        summary["6-MP"]["median_ci_high"],
    ) == (23, 13, None)
    for arm in ARMS:
        fit = lifelines_fit(arm)
        low, high = median_survival_times(fit.confidence_interval_).values[0]
        assert summary[arm]["median_relief_days"] == fit.median_survival_time_
        assert summary[arm]["median_ci_low"] == low
        assert summary[arm]["median_ci_high"] == (None if np.isinf(high) else high)


def test_survival_at_a_day_is_the_step_before_it_and_unknown_past_follow_up(curves):
    summary = {row["arm"]: row for row in survival_summary(curves.lazy(), ["arm"]).collect().to_dicts()}
    fit = lifelines_fit("6-MP")
    assert summary["6-MP"]["survival_28d"] == pytest.approx(fit.predict(28))
    assert summary["6-MP"]["survival_56d"] is None  # follow-up ends at 35 weeks with the curve above 0
    assert summary["placebo"]["survival_28d"] == 0.0  # every placebo patient relapsed by week 23
    assert (summary["6-MP"]["responder_count"], summary["6-MP"]["relapse_count"]) == (21, 9)
