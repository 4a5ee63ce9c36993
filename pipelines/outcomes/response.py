"""Baselines, follow-ups, response, remission and relief per series and instrument (shared spec §4)."""

from __future__ import annotations

import polars as pl

from pipelines.outcomes.rules import OutcomeRules
from pipelines.outcomes.series import calendar_days, starts_new_run

PAIR_KEY = ["patient_id", "series_number", "instrument"]

# A value computed in floating point (a ratio, a percentage, a difference of
# decimal scores) can land one ulp short of an exact threshold: every
# threshold on a computed value (response, reliable change, the early check)
# is compared with this tolerance, which keeps "reduction >= 30%" true at
# exactly 30% without admitting 29.99%.
THRESHOLD_TOLERANCE = 1e-9


def outcome_instruments(instruments: pl.LazyFrame) -> pl.LazyFrame:
    """Return the registry rows that define response (CADSS is a safety measure and has none)."""
    return instruments.filter(pl.col("response_pct").is_not_null()).select(
        "instrument",
        "score_min",
        "response_pct",
        "remission_max",
        # Read as floats whatever the seed holds: an instrument without them has them empty (§10.3).
        pl.col("reliable_change").cast(pl.Float64),
        pl.col("caseness_min").cast(pl.Float64),
    )


def scored_by_patient_and_time(assessments: pl.LazyFrame, instruments: pl.LazyFrame) -> pl.LazyFrame:
    """Return the assessments of outcome instruments, narrow and sorted by patient and time.

    Sorted by patient first, as-of joins by patient run as merges over both
    frames in one order, several times faster than over frames sorted by time alone.
    """
    return (
        assessments.join(outcome_instruments(instruments), on="instrument", how="semi")
        .select("patient_id", "instrument", "administered_at", "score")
        .sort("patient_id", "administered_at")
    )


def baselines_from_assessments(
    series: pl.LazyFrame, assessments: pl.LazyFrame, instruments: pl.LazyFrame, rules: OutcomeRules
) -> pl.LazyFrame:
    """Return one row per (series, outcome instrument the patient has) with its baseline, if any.

    The baseline is the latest assessment at or before the series start whose
    date is at most baseline_window_days before the start date (§4).
    """
    scored = scored_by_patient_and_time(assessments, instruments)
    pairs = series.select("patient_id", "series_number", "series_start_at").join(
        scored.select("patient_id", "instrument").unique(), on="patient_id", how="inner"
    )
    # Sorted by instrument too, so that the table comes in key order and its grain check is the order's proof
    # (assets.checks.grain_outcome_of_ordered_frame), not a count of three million keys.
    nearest_before = pairs.sort("patient_id", "series_start_at", "instrument").join_asof(
        scored,
        left_on="series_start_at",
        right_on="administered_at",
        by=["patient_id", "instrument"],
        strategy="backward",
        allow_exact_matches=True,  # a score at the moment of the first infusion is pre-infusion (§1)
        check_sortedness=False,  # sorted by patient and time, hence by time within every group
    )
    in_window = calendar_days(pl.col("series_start_at"), pl.col("administered_at")) <= rules.baseline_window_days
    return nearest_before.select(
        *PAIR_KEY,
        pl.when(in_window).then(pl.col("administered_at")).alias("baseline_at"),
        pl.when(in_window).then(pl.col("score")).alias("baseline_score"),
    )


def pct_change() -> pl.Expr:
    """Return 100 * (score - baseline) / baseline; null where the baseline is 0 (§4)."""
    baseline = pl.col("baseline_score")
    return pl.when(baseline > 0).then(100.0 * (pl.col("score") - baseline) / baseline).alias("pct_change")


def meets_response() -> pl.Expr:
    """Return whether the reduction from baseline is at least the instrument's response_pct."""
    baseline = pl.col("baseline_score")
    reduction_x100 = (baseline - pl.col("score")) * 100.0
    threshold_x100 = pl.col("response_pct") * baseline
    # Cross-multiplied so that an exact 50% drop compares exactly, not via a rounded quotient.
    return (
        pl.when(baseline > 0)
        .then(reduction_x100 >= threshold_x100 - THRESHOLD_TOLERANCE * baseline)
        .alias("meets_response")
    )


def meets_remission() -> pl.Expr:
    """Return whether the score is at or below the instrument's remission cut-off."""
    return (
        pl.when(pl.col("baseline_score").is_not_null())
        .then(pl.col("score") <= pl.col("remission_max"))
        .alias("meets_remission")
    )


def is_in_response_window(rules: OutcomeRules) -> pl.Expr:
    """Return whether the follow-up is dated at most response_window_days after the series end date."""
    return (calendar_days(pl.col("administered_at"), pl.col("series_end_at")) <= rules.response_window_days).alias(
        "is_in_response_window"
    )


def is_after_series_end() -> pl.Expr:
    """Return whether the follow-up is strictly after the last infusion: the assessments relief is judged on."""
    return (pl.col("administered_at") > pl.col("series_end_at")).alias("is_after_series_end")


def assessment_outcomes_from_follow_ups(
    assessments: pl.LazyFrame,
    infusions_numbered: pl.LazyFrame,
    series: pl.LazyFrame,
    baselines: pl.LazyFrame,
    instruments: pl.LazyFrame,
    rules: OutcomeRules,
) -> pl.LazyFrame:
    """Return one row per follow-up assessment of an outcome instrument, judged against its series baseline.

    A follow-up of series s lies in (start of s, start of s+1]. The latest
    infusion strictly before the assessment is therefore always an infusion
    of s, and its position in s is the number of infusions received (§4).
    """
    # Frames stay narrow while they are sorted and joined: moving columns, not comparing keys, is what costs.
    thresholds = outcome_instruments(instruments).select("instrument", "response_pct", "remission_max")
    infusions_in_series = infusions_numbered.select(
        "patient_id", "infused_at", "series_number", pl.col("infusion_number").alias("infusions_received")
    ).join(
        series.select("patient_id", "series_number", "series_end_at"),
        on=["patient_id", "series_number"],
        maintain_order="left",
    )
    latest_infusion_before = scored_by_patient_and_time(assessments, instruments).join_asof(
        infusions_in_series.sort("patient_id", "infused_at"),
        left_on="administered_at",
        right_on="infused_at",
        by="patient_id",
        strategy="backward",
        allow_exact_matches=False,  # a score at an infusion's own timestamp is that infusion's pre-infusion score
        check_sortedness=False,  # sorted by patient and time, hence by time within every patient
    )
    return (
        latest_infusion_before.filter(pl.col("series_number").is_not_null())
        .drop("infused_at")
        # Sorted by patient and time, hence by series: a stable sort groups each pair's rows in time order.
        .sort(PAIR_KEY, maintain_order=True)
        # Joins that keep the sorted order: the result is sorted without sorting the wide frame.
        .join(baselines.select(*PAIR_KEY, "baseline_score"), on=PAIR_KEY, how="left", maintain_order="left")
        .join(thresholds, on="instrument", how="left", maintain_order="left")
        .with_columns(
            pct_change(),
            meets_response(),
            meets_remission(),
            is_in_response_window(rules),
            is_after_series_end(),
        )
        .select(
            *PAIR_KEY,
            "administered_at",
            "score",
            "baseline_score",
            "pct_change",
            "infusions_received",
            "meets_response",
            "meets_remission",
            "is_in_response_window",
            "is_after_series_end",
        )
    )


def follow_up_summary(assessment_outcomes: pl.LazyFrame, rules: OutcomeRules) -> pl.LazyFrame:
    """Return per (series, instrument) the end, best, first-response and relapse facts of its follow-ups.

    assessment_outcomes must be sorted by series, instrument and time, as
    assessment_outcomes_from_follow_ups returns it. Each fact is then a plain
    min, max or sum over a masked column of one run of rows (one pair), which
    Polars aggregates many times faster than filtered and sorted lists:

    - the end row is the last row of the response window. The window is a
      prefix of each run (a later date is never nearer the series end), so
      it is the window row whose next row is outside the window or the pair;
    - the first responding row is a responding row with as many responding
      rows before it as there were before its pair began;
    - the early check (§10.4) is the first window row after at least
      early_check_infusions infusions. infusions_received never falls within
      a pair, so the window's rows that qualify are one run: the first is the
      one whose previous row does not qualify or is another pair's.
    """
    window = pl.col("is_in_response_window")
    responding_in_window = window & pl.col("meets_response")
    after_end = pl.col("is_after_series_end")
    first_of_pair = starts_new_run(*PAIR_KEY)
    next_in_window_of_pair = (window.shift(-1) & ~first_of_pair.shift(-1)).fill_null(False)
    is_end = window & ~next_in_window_of_pair
    responding = responding_in_window.fill_null(False)
    # Responding rows before this one, over the whole frame, and at the start of this row's pair.
    responding_before = responding.cast(pl.Int32).cum_sum() - responding.cast(pl.Int32)
    is_first_response = responding & (
        responding_before == pl.when(first_of_pair).then(responding_before).forward_fill()
    )
    qualifies_early = (window & (pl.col("infusions_received") >= rules.early_check_infusions)).fill_null(False)
    is_early_check = qualifies_early & (first_of_pair | ~qualifies_early.shift(1).fill_null(False))

    def where(condition: pl.Expr, column: str) -> pl.Expr:
        return pl.when(condition).then(pl.col(column))

    # Masked columns are computed over the whole sorted frame; the aggregation only takes min, max or sum.
    masked = {
        "window_follow_up_count": window.cast(pl.Int32),
        "end_score": where(is_end, "score"),
        "end_pct_change": where(is_end, "pct_change"),
        "end_meets_response": where(is_end, "meets_response"),
        "end_meets_remission": where(is_end, "meets_remission"),
        "best_score": where(window, "score"),
        "best_pct_change": where(window, "pct_change"),
        "first_response_at": where(responding_in_window, "administered_at"),
        "infusions_to_response": where(is_first_response, "infusions_received"),
        "early_check_pct_change": where(is_early_check, "pct_change"),
        "relapse_at": where(after_end & ~pl.col("meets_response"), "administered_at"),
        "last_post_series_at": where(after_end, "administered_at"),
    }
    # One row at most per pair has an early check: max takes it.
    smallest = {"best_score", "best_pct_change", "first_response_at", "relapse_at"}
    return (
        assessment_outcomes.select(*PAIR_KEY, pair=first_of_pair.cum_sum(), **masked)
        .group_by("pair", maintain_order=True)
        .agg(
            *[pl.col(key).first() for key in PAIR_KEY],
            pl.col("window_follow_up_count").sum(),
            *[
                pl.col(name).min() if name in smallest else pl.col(name).max()
                for name in masked
                if name != "window_follow_up_count"
            ],
        )
        .drop("pair")
    )


def status() -> pl.Expr:
    """Return why a (series, instrument) cannot be judged, checked in the spec's order, or 'evaluable'."""
    return (
        pl.when(pl.col("baseline_score").is_null())
        .then(pl.lit("no_baseline"))
        .when(pl.col("baseline_score") <= pl.col("score_min"))
        .then(pl.lit("baseline_at_floor"))
        .when(pl.col("window_follow_up_count").fill_null(0) == 0)
        .then(pl.lit("no_follow_up"))
        .otherwise(pl.lit("evaluable"))
        .alias("status")
    )


def relief_status() -> pl.Expr:
    """Return relapsed, censored or no_post_series_follow_up for responders; null otherwise."""
    return (
        pl.when(~pl.col("is_responder").fill_null(False))
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("relapse_at").is_not_null())
        .then(pl.lit("relapsed"))
        .when(pl.col("last_post_series_at").is_not_null())
        .then(pl.lit("censored"))
        .otherwise(pl.lit("no_post_series_follow_up"))
        .alias("relief_status")
    )


def relief_days() -> pl.Expr:
    """Return days from the series end to relapse, or to the last follow-up when censored."""
    relief_ends_at = (
        pl.when(pl.col("relief_status") == "relapsed")
        .then(pl.col("relapse_at"))
        .when(pl.col("relief_status") == "censored")
        .then(pl.col("last_post_series_at"))
    )
    return calendar_days(relief_ends_at, pl.col("series_end_at")).alias("relief_days")


OUTCOME_COLUMNS = [
    "end_score",
    "end_pct_change",
    "best_score",
    "best_pct_change",
    "is_responder",
    "is_remitter",
    "first_response_at",
    "infusions_to_response",
    "is_rapid_response",
    "end_change",
    "is_reliable_improvement",
    "is_reliable_deterioration",
    "is_reliable_recovery",
    "is_early_non_improver",
]


def reliable_change_columns() -> dict[str, pl.Expr]:
    """Return end_change and the reliable change outcomes (§10.3); null for instruments without reliable_change."""
    has_criterion = pl.col("reliable_change").is_not_null()
    change = pl.col("end_score") - pl.col("baseline_score")
    # Pain NRS 2.3 to 0.3 is -1.9999999999999998 in floating point (THRESHOLD_TOLERANCE).
    improved = change <= -pl.col("reliable_change") + THRESHOLD_TOLERANCE
    return {
        "end_change": pl.when(has_criterion).then(change),
        "is_reliable_improvement": pl.when(has_criterion).then(improved),
        "is_reliable_deterioration": pl.when(has_criterion).then(
            change >= pl.col("reliable_change") - THRESHOLD_TOLERANCE
        ),
        "is_reliable_recovery": pl.when(has_criterion).then(
            (pl.col("baseline_score") >= pl.col("caseness_min"))
            & (pl.col("end_score") < pl.col("caseness_min"))
            & improved
        ),
    }


def is_early_non_improver(rules: OutcomeRules) -> pl.Expr:
    """Return whether an induction's early check improved less than early_improvement_pct (§10.4).

    Null for a booster and without an early check; the series' status nulls it when not evaluable.
    """
    # Pain NRS 5.5 to 4.4 is -19.999999999999996% in floating point (THRESHOLD_TOLERANCE).
    return pl.when((pl.col("series_kind") == "induction") & pl.col("early_check_pct_change").is_not_null()).then(
        pl.col("early_check_pct_change") > -rules.early_improvement_pct + THRESHOLD_TOLERANCE
    )


def series_outcomes_from_assessment_outcomes(
    baselines: pl.LazyFrame,
    assessment_outcomes: pl.LazyFrame,
    series: pl.LazyFrame,
    instruments: pl.LazyFrame,
    rules: OutcomeRules,
) -> pl.LazyFrame:
    """Return one row per (series, instrument) pair with its status and end-of-series outcome (§4, §10.2-10.4)."""
    evaluable = pl.col("status") == "evaluable"
    return (
        baselines.join(follow_up_summary(assessment_outcomes, rules), on=PAIR_KEY, how="left")
        .join(
            outcome_instruments(instruments).select(
                "instrument", "score_min", "remission_max", "reliable_change", "caseness_min"
            ),
            on="instrument",
            how="left",
        )
        .join(
            series.select("patient_id", "series_number", "series_kind", "series_end_at", "booster_interval_days"),
            on=["patient_id", "series_number"],
            how="left",
        )
        .with_columns(status())
        .with_columns(
            is_responder=pl.col("end_meets_response"),
            is_remitter=pl.col("end_meets_remission"),
            is_rapid_response=(pl.col("infusions_to_response") == 1).fill_null(False),
            is_early_non_improver=is_early_non_improver(rules),
            **reliable_change_columns(),
        )
        # Outcome columns of a series that is not evaluable are null (§4).
        .with_columns([pl.when(evaluable).then(pl.col(c)).alias(c) for c in OUTCOME_COLUMNS])
        .with_columns(relief_status())
        .with_columns(relief_days())
        # Remission is judged as before, but counts in rates only where the baseline was above the cut-off (§10.2).
        .with_columns(is_remission_eligible=evaluable & (pl.col("baseline_score") > pl.col("remission_max")))
        .select(
            *PAIR_KEY,
            "series_kind",
            "status",
            "baseline_at",
            "baseline_score",
            "is_remission_eligible",
            *OUTCOME_COLUMNS,
            "relief_days",
            "relief_status",
            "booster_interval_days",
        )
        .sort(PAIR_KEY)
    )
