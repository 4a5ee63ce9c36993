"""Cohort statistics pooled from per-cell summaries equal the statistics of the pooled scores."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from scipy import stats

from pipelines.stats.cohorts import TRAJECTORY_CELLS_SQL, trajectories_from_cells

# Two clinics' follow-ups after two infusions: austin -50 and -30 (one series each), frisco -10.
FOLLOW_UPS = pl.DataFrame(
    {
        "clinic_id": ["austin", "austin", "frisco"],
        "primary_indication": ["depression"] * 3,
        "series_id": ["P1#1", "P2#1", "P3#1"],
        "series_kind": ["induction"] * 3,
        "instrument": ["phq9"] * 3,
        "infusions_received": [2, 2, 2],
        "pct_change": [-50.0, -30.0, -10.0],
        "is_in_response_window": [True] * 3,
    }
)


@pytest.fixture
def trajectories() -> pl.DataFrame:
    con = duckdb.connect()
    con.execute("create schema marts")
    con.register("follow_ups", FOLLOW_UPS)
    con.execute("create table marts.assessment_outcomes as select * from follow_ups")
    return trajectories_from_cells(con.sql(TRAJECTORY_CELLS_SQL).pl().lazy()).collect()


def test_network_point_pools_the_clinics_scores_into_one_mean_and_t_interval(trajectories):
    network = trajectories.filter((pl.col("dimension") == "network") & (pl.col("infusions_received") == 2)).row(
        0, named=True
    )
    scores = FOLLOW_UPS["pct_change"].to_numpy()
    low, high = stats.t.interval(0.95, len(scores) - 1, loc=scores.mean(), scale=stats.sem(scores))
    assert network["score_count"] == 3
    assert network["mean_pct_change"] == pytest.approx(-30.0)
    assert (network["ci_low"], network["ci_high"]) == (pytest.approx(low), pytest.approx(high))


def test_a_clinic_with_one_score_has_a_mean_but_no_interval(trajectories):
    frisco = trajectories.filter((pl.col("dimension_value") == "frisco") & (pl.col("infusions_received") == 2)).row(
        0, named=True
    )
    assert (frisco["score_count"], frisco["mean_pct_change"], frisco["ci_low"]) == (1, -10.0, None)


def test_each_series_counts_once_at_infusion_zero(trajectories):
    baseline = trajectories.filter((pl.col("dimension") == "network") & (pl.col("infusions_received") == 0))
    assert baseline.select("score_count", "mean_pct_change").row(0) == (3, 0.0)
