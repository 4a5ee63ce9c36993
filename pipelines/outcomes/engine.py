"""The whole outcome engine in one call: infusions and assessments in, the five per-patient tables out."""

from __future__ import annotations

import polars as pl

from pipelines.outcomes.response import (
    assessment_outcomes_from_follow_ups,
    baselines_from_assessments,
    series_outcomes_from_assessment_outcomes,
)
from pipelines.outcomes.rules import OutcomeRules
from pipelines.outcomes.series import infusions_numbered_from_infusions, series_from_numbered_infusions


def outcome_frames(
    infusions: pl.LazyFrame, assessments: pl.LazyFrame, instruments: pl.LazyFrame, rules: OutcomeRules
) -> dict[str, pl.DataFrame]:
    """Return infusion_sessions, treatment_series, series_baselines, assessment_outcomes and series_outcomes.

    Every table is per patient and comes sorted by patient first: the tables of disjoint sets of patients,
    concatenated in patient order, are the tables of their union.
    """
    numbered = infusions_numbered_from_infusions(infusions, rules).collect()
    series = series_from_numbered_infusions(numbered.lazy(), rules).collect()
    # The as-of joins run faster on Polars' in-memory engine than on its default streaming one (about a
    # fifth, measured at a million patients); the other steps do not gain.
    baselines = baselines_from_assessments(series.lazy(), assessments, instruments, rules).collect(engine="in-memory")
    follow_ups = assessment_outcomes_from_follow_ups(
        assessments, numbered.lazy(), series.lazy(), baselines.lazy(), instruments, rules
    ).collect(engine="in-memory")
    outcomes = series_outcomes_from_assessment_outcomes(
        baselines.lazy(), follow_ups.lazy(), series.lazy(), instruments, rules
    ).collect()
    return {
        "infusion_sessions": numbered,
        "treatment_series": series,
        "series_baselines": baselines,
        "assessment_outcomes": follow_ups,
        "series_outcomes": outcomes,
    }
