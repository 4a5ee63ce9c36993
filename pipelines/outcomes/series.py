"""Treatment series from infusions (shared spec §3)."""

from __future__ import annotations

import polars as pl

from pipelines.outcomes.rules import OutcomeRules


def calendar_days(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """Return date(later) - date(earlier) in whole days: every length in days ignores the hours (§1)."""
    return (later.dt.date() - earlier.dt.date()).dt.total_days().cast(pl.Int32)


def starts_new_run(*columns: str) -> pl.Expr:
    """Return whether a row of a sorted frame starts a new run of equal values in the columns (True on row 1).

    The engine works on frames sorted by patient and time, where every group is
    a run of rows: marking where runs start replaces per-group windows, which
    are many times slower with a million patients.
    """
    same = [pl.col(column) == pl.col(column).shift(1) for column in columns]
    return (~pl.all_horizontal(same)).fill_null(True)


def counted_from_run_start(counter: pl.Expr, run_starts: pl.Expr) -> pl.Expr:
    """Return a running count (cum_sum or row index) restarted at 1 at each run start of a sorted frame."""
    return counter - pl.when(run_starts).then(counter).forward_fill() + 1


def series_number(rules: OutcomeRules) -> pl.Expr:
    """Return the series number of each infusion; the frame must be sorted by patient and time."""
    first_of_patient = starts_new_run("patient_id")
    gap_days = calendar_days(pl.col("infused_at"), pl.col("infused_at").shift(1))
    starts_series = first_of_patient | (gap_days > rules.series_gap_days).fill_null(True)
    return counted_from_run_start(starts_series.cast(pl.Int32).cum_sum(), first_of_patient).alias("series_number")


def infusion_number() -> pl.Expr:
    """Return the 1-based position of each infusion within its series; the frame must be sorted."""
    return counted_from_run_start(
        pl.int_range(pl.len(), dtype=pl.Int32), starts_new_run("patient_id", "series_number")
    ).alias("infusion_number")


def infusions_numbered_from_infusions(infusions: pl.LazyFrame, rules: OutcomeRules) -> pl.LazyFrame:
    """Return one row per infusion (patient_id, infused_at) with its series_number and infusion_number.

    Rows come sorted by patient and time.
    """
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
    """Return one row per (patient_id, series_number) with its kind, bounds, size and booster interval.

    Sorted by patient and series: a series' first row and last row give its
    bounds, taken side by side in the same order.
    """
    rows = infusions_numbered.sort("patient_id", "series_number", "infusion_number")
    is_last_of_series = (pl.col("infusion_number").shift(-1) == 1).fill_null(True)
    firsts = rows.filter(pl.col("infusion_number") == 1).select(
        "patient_id", "series_number", pl.col("infused_at").alias("series_start_at")
    )
    lasts = rows.filter(is_last_of_series).select(
        pl.col("infused_at").alias("series_end_at"), pl.col("infusion_number").alias("infusion_count")
    )
    # The next row is the same patient's next series exactly when its series_number is above 1.
    next_is_same_patient = pl.col("series_number").shift(-1) > 1
    return (
        pl.concat([firsts, lasts], how="horizontal")
        .with_columns(
            previous_series_end_at=pl.when(pl.col("series_number") > 1).then(pl.col("series_end_at").shift(1)),
            next_series_start_at=pl.when(next_is_same_patient).then(pl.col("series_start_at").shift(-1)),
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
