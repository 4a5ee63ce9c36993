"""The outcome engine: plain Polars functions, no Dagster, one per derived table."""

from pipelines.outcomes.engine import outcome_frames, outcome_frames_by_shard
from pipelines.outcomes.response import (
    assessment_outcomes_from_follow_ups,
    baselines_from_assessments,
    series_outcomes_from_assessment_outcomes,
)
from pipelines.outcomes.rules import OutcomeRules
from pipelines.outcomes.series import infusions_numbered_from_infusions, series_from_numbered_infusions

__all__ = [
    "OutcomeRules",
    "assessment_outcomes_from_follow_ups",
    "baselines_from_assessments",
    "infusions_numbered_from_infusions",
    "outcome_frames",
    "outcome_frames_by_shard",
    "series_from_numbered_infusions",
    "series_outcomes_from_assessment_outcomes",
]
