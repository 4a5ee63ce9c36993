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


# Patients the engine works on at once. Its peak is the as-of joins' working set, which grows with the patients
# joined (3.4 GB for a million at once); the rows it reads and the tables it returns are a fraction of that.
SHARD_PATIENTS = 250_000


def outcome_frames_by_shard(
    infusions: pl.LazyFrame,
    assessments: pl.LazyFrame,
    instruments: pl.LazyFrame,
    rules: OutcomeRules,
    patients: int,
    shard_patients: int = SHARD_PATIENTS,
) -> dict[str, pl.DataFrame]:
    """Return outcome_frames, computed for shard_patients patients at a time and concatenated.

    patient_id must be an enum of the patients, in the order of its categories: a shard is a range of
    its codes, so the shards' tables, concatenated in order, come sorted by patient like one pass's.
    """
    shards: dict[str, list[pl.DataFrame]] = {}
    for first in range(0, max(patients, 1), shard_patients):
        in_shard = pl.col("patient_id").to_physical().is_between(first, first + shard_patients, closed="left")
        frames = outcome_frames(infusions.filter(in_shard), assessments.filter(in_shard), instruments, rules)
        for name, frame in frames.items():
            shards.setdefault(name, []).append(frame)
    return {name: pl.concat(parts) if len(parts) > 1 else parts[0] for name, parts in shards.items()}
