"""The parameters of the clinical rules (shared spec §3-7), with the spec's defaults.

This dataclass is the one declaration of every parameter: the settings object,
the Dagster resource and the CLI are all built from its fields, so a new
parameter appears everywhere by adding it here.
"""

from __future__ import annotations

import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class OutcomeRules:
    """The spec's parameters; field metadata carries the text shown in the UI and --help."""

    series_gap_days: int = dataclasses.field(
        default=14,
        metadata={"doc": "infusions more than this many calendar days apart start a new series (§3)"},
    )
    reinduction_gap_days: int = dataclasses.field(
        default=180,
        metadata={"doc": "a series starting more than this many days after the previous one ends is a new induction (§3)"},
    )
    induction_target_infusions: int = dataclasses.field(
        default=6,
        metadata={"doc": "infusions an induction needs to count as completed (§3)"},
    )
    baseline_window_days: int = dataclasses.field(
        default=30,
        metadata={"doc": "a baseline may be at most this many days before the series start date (§4)"},
    )
    response_window_days: int = dataclasses.field(
        default=14,
        metadata={"doc": "follow-ups up to this many days after the series end date judge response (§4)"},
    )
    sbp_alert: float = dataclasses.field(
        default=180.0, metadata={"doc": "systolic mmHg at or above which an infusion is hypertensive (§6)"}
    )
    dbp_alert: float = dataclasses.field(
        default=110.0, metadata={"doc": "diastolic mmHg at or above which an infusion is hypertensive (§6)"}
    )
    spo2_alert: float = dataclasses.field(
        default=90.0, metadata={"doc": "SpO2 % below which an infusion had a desaturation (§6)"}
    )
    min_cell_size: int = dataclasses.field(
        default=11, metadata={"doc": "published counts from 1 to this minus 1 are suppressed (§7)"}
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"{field.name} must not be negative (got {getattr(self, field.name)})")


def rule_fields() -> list[dataclasses.Field]:
    """Return the dataclass fields of OutcomeRules, in declaration order."""
    return list(dataclasses.fields(OutcomeRules))


def rule_type(field: dataclasses.Field) -> type:
    """Return the Python type of a rule field (annotations are strings under postponed evaluation)."""
    return typing.get_type_hints(OutcomeRules)[field.name]
