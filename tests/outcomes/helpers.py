"""Run the outcome engine on a few hand-written rows."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.outcomes import (
    OutcomeRules,
    infusions_numbered_from_infusions,
    outcome_frames,
    series_from_numbered_infusions,
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
    tables = outcome_frames(infusions, assessments, INSTRUMENTS, rules)
    keyed = {(row["series_number"], row["instrument"]): row for row in tables["series_outcomes"].to_dicts()}
    return tables["assessment_outcomes"].to_dicts(), keyed


def outcome(infusions, assessments, series_number: int = 1, instrument: str = "phq9", **rules) -> dict:
    return engine(infusions, assessments, OutcomeRules(**rules))[1][(series_number, instrument)]
