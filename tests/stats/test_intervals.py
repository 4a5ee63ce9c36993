"""Wilson and t intervals against statsmodels and scipy on published examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from pipelines.stats.intervals import mean_bounds, wilson_bounds


def wilson(successes: list[int], trials: list[int]) -> list[tuple[float, float]]:
    low, high = wilson_bounds(pl.col("k"), pl.col("n"))
    frame = pl.DataFrame({"k": successes, "n": trials}).select(low.alias("low"), high.alias("high"))
    return list(frame.iter_rows())


def test_wilson_interval_matches_newcombes_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 and 0/20.
    (low, high), (zero_low, zero_high) = wilson([81, 0], [263, 20])
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert (round(zero_low, 4), round(zero_high, 4)) == (0.0, 0.1611)


@pytest.mark.parametrize(("k", "n"), [(81, 263), (0, 20), (20, 20), (1, 2), (7, 11), (500, 1000), (3, 97)])
def test_wilson_interval_matches_statsmodels(k, n):
    [(low, high)] = wilson([k], [n])
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx(expected, abs=1e-12)


def test_wilson_interval_is_null_without_trials():
    assert wilson([0], [0]) == [(None, None)]


def test_mean_interval_matches_scipys_t_interval():
    values = np.array([-10.0, -35.5, -50.0, -62.5, -20.0, -80.0, 5.0])
    low, high = mean_bounds(pl.col("mean"), pl.col("sd"), pl.col("n"))
    frame = pl.DataFrame({"mean": [values.mean()], "sd": [values.std(ddof=1)], "n": [len(values)]})
    got = frame.select(low.alias("low"), high.alias("high")).row(0)
    expected = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert got == pytest.approx(expected, abs=1e-10)
