"""The parameters of the clinical rules (shared spec §3-7), with the spec's defaults.

This model is the one declaration of every parameter: the settings object and
the Dagster resource inherit its fields, and the CLI makes one option per
field, so a new parameter appears everywhere by adding it here. Each field's
description is the text shown in the UI and in --help.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo


class OutcomeRules(BaseModel):
    """The spec's parameters; every one is a count of days or infusions, or a threshold, and none is negative."""

    model_config = ConfigDict(frozen=True)

    series_gap_days: int = Field(
        default=14, ge=0, description="infusions more than this many calendar days apart start a new series (§3)"
    )
    reinduction_gap_days: int = Field(
        default=180,
        ge=0,
        description="a series starting more than this many days after the previous one ends is a new induction (§3)",
    )
    induction_target_infusions: int = Field(
        default=6, ge=0, description="infusions an induction needs to count as completed (§3)"
    )
    baseline_window_days: int = Field(
        default=30, ge=0, description="a baseline may be at most this many days before the series start date (§4)"
    )
    response_window_days: int = Field(
        default=14, ge=0, description="follow-ups up to this many days after the series end date judge response (§4)"
    )
    early_check_infusions: int = Field(
        default=4,
        ge=1,
        description="an induction's early check is its first follow-up after at least this many infusions (§10.4)",
    )
    early_improvement_pct: float = Field(
        default=20.0,
        ge=0,
        description="an early check improved by less than this % from baseline flags an early non-improver (§10.4)",
    )
    sbp_alert: float = Field(
        default=180.0, ge=0, description="systolic mmHg at or above which an infusion is hypertensive (§6)"
    )
    dbp_alert: float = Field(
        default=110.0, ge=0, description="diastolic mmHg at or above which an infusion is hypertensive (§6)"
    )
    spo2_alert: float = Field(default=90.0, ge=0, description="SpO2 % below which an infusion had a desaturation (§6)")
    min_cell_size: int = Field(
        default=11, ge=0, description="published counts from 1 to this minus 1 are suppressed (§7)"
    )


def rule_fields() -> dict[str, FieldInfo]:
    """Return the fields of OutcomeRules by name, in declaration order."""
    return dict(OutcomeRules.model_fields)
