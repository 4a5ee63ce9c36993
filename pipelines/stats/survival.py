"""Kaplan-Meier estimates with Greenwood log(-log) intervals, for many groups at once.

Matches lifelines' KaplanMeierFitter (and R's survfit(conf.type = "log-log")):
S(t) = prod(1 - d_i / n_i); Var from Greenwood's sum d_i / (n_i (n_i - d_i)); the
interval is exp(-exp(log(-log S) -/+ z sqrt(Var) / log S)).
"""

from __future__ import annotations

import polars as pl

from pipelines.stats.intervals import Z95


def kaplan_meier(observations: pl.LazyFrame, group: list[str], z: float = Z95) -> pl.LazyFrame:
    """Return one row per group and distinct duration: at_risk, events, censored, survival, ci_low, ci_high.

    observations: one row per subject with `duration` (int days) and `is_event` (bool).
    """
    return kaplan_meier_from_counts(events_per_duration(observations, group), group, z)


def events_per_duration(observations: pl.LazyFrame, group: list[str]) -> pl.LazyFrame:
    """Return per group and distinct duration the events and censored subjects of observations."""
    return observations.group_by(*group, "duration").agg(
        events=pl.col("is_event").sum().cast(pl.Int64), censored=(~pl.col("is_event")).sum().cast(pl.Int64)
    )


def kaplan_meier_from_counts(counts: pl.LazyFrame, group: list[str], z: float = Z95) -> pl.LazyFrame:
    """Return kaplan_meier's rows from events and censored counts per group and duration (events_per_duration)."""
    removed = pl.col("events") + pl.col("censored")
    per_time = counts.sort(*group, "duration")
    at_risk = removed.sum().over(group) - removed.cum_sum().over(group) + removed
    estimated = per_time.with_columns(at_risk=at_risk.cast(pl.Int64)).with_columns(
        survival=(1 - pl.col("events") / pl.col("at_risk")).cum_prod().over(group),
        greenwood=(pl.col("events") / (pl.col("at_risk") * (pl.col("at_risk") - pl.col("events"))))
        .cum_sum()
        .over(group),
    )
    log_survival = pl.col("survival").log()
    spread = z * pl.col("greenwood").sqrt() / log_survival
    defined = (pl.col("survival") > 0) & (pl.col("survival") < 1) & pl.col("greenwood").is_finite()
    # log S < 0, so `spread` is negative: subtracting it widens towards 0, adding it towards 1.
    # As in lifelines, the band is [1, 1] before the first event and [0, 0] once S = 0.
    return estimated.with_columns(
        ci_low=pl.when(pl.col("survival") == 1)
        .then(1.0)
        .when(pl.col("survival") == 0)
        .then(0.0)
        .when(defined)
        .then((-((-log_survival).log() - spread).exp()).exp()),
        ci_high=pl.when(pl.col("survival") == 1)
        .then(1.0)
        .when(pl.col("survival") == 0)
        .then(0.0)
        .when(defined)
        .then((-((-log_survival).log() + spread).exp()).exp()),
    ).drop("greenwood")


def first_duration_at_or_below(column: str, level: float = 0.5) -> pl.Expr:
    """Return the first duration at which the column falls to level or below (null when it never does)."""
    return pl.col("duration").filter(pl.col(column) <= level).min()


def survival_at(day: int) -> pl.Expr:
    """Return S(day) of a step curve: the last estimate at or before day, 1 before the first.

    Past the last time it is known only if the curve already reached 0; otherwise null (not extrapolated).
    """
    last_known = pl.col("survival").filter(pl.col("duration") <= day).last()
    beyond_follow_up = (pl.col("duration").max() < day) & (pl.col("survival").last() > 0)
    return pl.when(beyond_follow_up).then(None).otherwise(last_known.fill_null(1.0))


def survival_summary(curves: pl.LazyFrame, group: list[str]) -> pl.LazyFrame:
    """Return per group: subjects, events, median with its interval, S(28) and S(56)."""
    return (
        curves.sort(*group, "duration")
        .group_by(group)
        .agg(
            responder_count=(pl.col("events") + pl.col("censored")).sum(),
            relapse_count=pl.col("events").sum(),
            median_relief_days=first_duration_at_or_below("survival"),
            # The median's interval: where each band crosses one half (lifelines' median_survival_times of the bands).
            median_ci_low=first_duration_at_or_below("ci_low"),
            median_ci_high=first_duration_at_or_below("ci_high"),
            survival_28d=survival_at(28),
            survival_56d=survival_at(56),
        )
    )
