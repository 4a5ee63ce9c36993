"""Run the outcome engine on a few hand-written rows."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.outcomes import (
    OutcomeRules,
    assessment_outcomes_from_follow_ups,
    baselines_from_assessments,
    infusions_numbered_from_infusions,
    series_from_numbered_infusions,
    series_outcomes_from_assessment_outcomes,
)
from pipelines.sql_models import SQL_DIR

INSTRUMENTS = pl.read_csv(SQL_DIR / "seeds" / "instruments.csv").lazy()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def infusion_frame(*stamps: str, patient: str = "P1") -> pl.LazyFrame:
    return pl.LazyFrame({"patient_id": [patient] * len(stamps), "infused_at": [at(s) for s in stamps]})


def assessment_frame(rows: list[tuple[str, str, float]], patient: str = "P1") -> pl.LazyFrame:
    """rows: (instrument, administered_at, score)."""
    return pl.LazyFrame(
        {
            "patient_id": [patient] * len(rows),
            "instrument": [r[0] for r in rows],
            "administered_at": [at(r[1]) for r in rows],
            "score": [float(r[2]) for r in rows],
        },
        schema={
            "patient_id": pl.String,
            "instrument": pl.String,
            "administered_at": pl.Datetime("us"),
            "score": pl.Float64,
        },
    )


def series_rows(infusions: pl.LazyFrame, rules: OutcomeRules = OutcomeRules()) -> list[dict]:
    numbered = infusions_numbered_from_infusions(infusions, rules)
    return series_from_numbered_infusions(numbered, rules).collect().to_dicts()


def engine(infusions: pl.LazyFrame, assessments: pl.LazyFrame, rules: OutcomeRules = OutcomeRules()):
    """Return (follow-up rows, series outcome rows keyed by (series_number, instrument))."""
    numbered = infusions_numbered_from_infusions(infusions, rules)
    series = series_from_numbered_infusions(numbered, rules)
    baselines = baselines_from_assessments(series, assessments, INSTRUMENTS, rules)
    follow_ups = assessment_outcomes_from_follow_ups(assessments, numbered, series, baselines, INSTRUMENTS, rules)
    outcomes = series_outcomes_from_assessment_outcomes(baselines, follow_ups, series, INSTRUMENTS, rules).collect()
    keyed = {(row["series_number"], row["instrument"]): row for row in outcomes.to_dicts()}
    return follow_ups.collect().to_dicts(), keyed


def outcome(infusions, assessments, series_number: int = 1, instrument: str = "phq9", **rules) -> dict:
    return engine(infusions, assessments, OutcomeRules(**rules))[1][(series_number, instrument)]
