"""Treatment series from infusions (shared spec §3)."""

from __future__ import annotations

import polars as pl

from pipelines.outcomes.rules import OutcomeRules


def calendar_days(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """Return date(later) - date(earlier) in whole days: every length in days ignores the hours (§1)."""
    return (later.dt.date() - earlier.dt.date()).dt.total_days().cast(pl.Int32)


def series_number(rules: OutcomeRules) -> pl.Expr:
    """Return the series number of each infusion; frames must be sorted by patient and time."""
    gap_days = calendar_days(pl.col("infused_at"), pl.col("infused_at").shift(1)).over("patient_id")
    starts_series = gap_days.is_null() | (gap_days > rules.series_gap_days)
    return starts_series.cast(pl.Int32).cum_sum().over("patient_id").alias("series_number")


def infusion_number() -> pl.Expr:
    """Return the 1-based position of each infusion within its series."""
    return pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("patient_id", "series_number").alias("infusion_number")


def infusions_numbered_from_infusions(infusions: pl.LazyFrame, rules: OutcomeRules) -> pl.LazyFrame:
    """Return one row per infusion (patient_id, infused_at) with its series_number and infusion_number."""
    return (
        infusions.select("patient_id", "infused_at")
        .sort("patient_id", "infused_at")
        .with_columns(series_number(rules))
        .with_columns(infusion_number())
    )


def series_kind(rules: OutcomeRules) -> pl.Expr:
    """Return 'induction' for series 1 and after a gap beyond reinduction_gap_days, else 'booster'."""
    gap_days = calendar_days(pl.col("series_start_at"), pl.col("previous_series_end_at"))
    is_induction = (pl.col("series_number") == 1) | (gap_days > rules.reinduction_gap_days)
    return pl.when(is_induction).then(pl.lit("induction")).otherwise(pl.lit("booster")).alias("series_kind")


def booster_interval_days() -> pl.Expr:
    """Return the days from this series' end to the next series' start (null for the last series)."""
    return calendar_days(pl.col("next_series_start_at"), pl.col("series_end_at")).alias("booster_interval_days")


def is_completed_induction(rules: OutcomeRules) -> pl.Expr:
    """Return whether an induction reached induction_target_infusions."""
    return (
        (pl.col("series_kind") == "induction") & (pl.col("infusion_count") >= rules.induction_target_infusions)
    ).alias("is_completed_induction")


def series_from_numbered_infusions(infusions_numbered: pl.LazyFrame, rules: OutcomeRules) -> pl.LazyFrame:
    """Return one row per (patient_id, series_number) with its kind, bounds, size and booster interval."""
    return (
        infusions_numbered.group_by("patient_id", "series_number")
        .agg(
            series_start_at=pl.col("infused_at").min(),
            series_end_at=pl.col("infused_at").max(),
            infusion_count=pl.len().cast(pl.Int32),
        )
        .sort("patient_id", "series_number")
        .with_columns(
            previous_series_end_at=pl.col("series_end_at").shift(1).over("patient_id"),
            next_series_start_at=pl.col("series_start_at").shift(-1).over("patient_id"),
        )
        .with_columns(series_kind(rules), booster_interval_days())
        .with_columns(is_completed_induction(rules))
        .select(
            "patient_id",
            "series_number",
            "series_kind",
            "series_start_at",
            "series_end_at",
            "next_series_start_at",
            "infusion_count",
            "is_completed_induction",
            "booster_interval_days",
        )
    )
