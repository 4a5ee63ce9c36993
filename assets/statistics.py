"""Cohort statistics marts (shared spec §5): rates with Wilson intervals, Kaplan-Meier relief, trajectories."""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.checks import check_specs
from assets.tables import polars_table_specs, write_tables
from pipelines.database import key_of
from pipelines.resources import Warehouse
from pipelines.stats.case_mix import case_mix_comparison_from_series_outcomes
from pipelines.stats.cohorts import (
    TRAJECTORY_CELLS_SQL,
    TRAJECTORY_SERIES_SQL,
    end_change_quantiles_from_series_outcomes,
    relief_summary_from_survival,
    relief_survival_from_series_outcomes,
    response_rates_from_series_outcomes,
    trajectories_from_cells,
)

# table: (description shown in the UI and the warehouse, key columns)
STATISTICS_MARTS = {
    "response_rates": (
        (
            "Response, remission (over remission-eligible series), reliable improvement, deterioration and recovery, "
            "the early check's predictive value and sensitivity, rapid response and completed inductions, with 95% "
            "Wilson intervals. Grain: one row per (dimension, dimension_value, instrument, series_kind); dimension is "
            "network, clinic, indication, clinic_indication, start_month, start_quarter, start_year, provider, "
            "dose_band or a clinic's own split (clinic_start_month, clinic_provider, clinic_dose_band, ...)."
        ),
        ("dimension", "dimension_value", "instrument", "series_kind"),
    ),
    "relief_survival": (
        (
            "Kaplan-Meier relief curves over responders (event: relapse; otherwise censored) with Greenwood log(-log) "
            "95% bands. Grain: one row per (dimension, dimension_value, instrument, series_kind, day)."
        ),
        ("dimension", "dimension_value", "instrument", "series_kind", "day"),
    ),
    "relief_summary": (
        (
            "Median relief days with its 95% interval (null where not reached) and relief kept at 28 and 56 days. "
            "Grain: one row per (dimension, dimension_value, instrument, series_kind)."
        ),
        ("dimension", "dimension_value", "instrument", "series_kind"),
    ),
    "end_change_quantiles": (
        (
            "The 2.5%, 7.5%, ..., 97.5% quantiles of end-of-series % change over evaluable series: the published "
            "waterfall, with no bar standing for one patient. Grain: one row per (dimension, dimension_value, "
            "instrument, series_kind, quantile)."
        ),
        ("dimension", "dimension_value", "instrument", "series_kind", "quantile"),
    ),
    "case_mix_comparison": (
        (
            "Clinics compared after case mix (spec §10.5): observed responders, those expected at the network's "
            "response rate for series of the same instrument, kind, primary indication and baseline severity band "
            "(indirect standardisation), and O/E with its 95% interval by Byar's approximation. Grain: one row per "
            "(clinic_id, instrument, series_kind)."
        ),
        ("clinic_id", "instrument", "series_kind"),
    ),
    "trajectories": (
        (
            "Mean % change from baseline with a 95% t interval by infusions received (0-12) during inductions. "
            "Grain: one row per (dimension, dimension_value, instrument, infusions_received)."
        ),
        ("dimension", "dimension_value", "instrument", "infusions_received"),
    ),
}

DESCRIPTIONS = {name: description for name, (description, _) in STATISTICS_MARTS.items()}
KEY_COLUMNS = {name: key_columns for name, (_, key_columns) in STATISTICS_MARTS.items()}


SERIES_OUTCOME_COLUMNS = (
    "clinic_id",
    "primary_indication",
    "series_start_at",
    "provider_id",
    "dose_band",
    "instrument",
    "series_kind",
    "status",
    "baseline_score",
    "is_responder",
    "is_remission_eligible",
    "is_remitter",
    "is_rapid_response",
    "is_completed_induction",
    "is_reliable_improvement",
    "is_reliable_deterioration",
    "is_reliable_recovery",
    "is_early_non_improver",
    "relief_days",
    "relief_status",
    "end_pct_change",
)


@dg.multi_asset(
    specs=polars_table_specs(
        "marts",
        DESCRIPTIONS,
        [key_of("marts.series_outcomes"), key_of("marts.assessment_outcomes"), key_of("seeds.instruments")],
    ),
    check_specs=[
        spec for name, key_columns in KEY_COLUMNS.items() for spec in check_specs(f"marts.{name}", key_columns)
    ],
)
def statistics_marts(warehouse: Warehouse):
    """Compute the cohort statistics from the per-series marts, in one pass."""
    with warehouse.connect() as con:
        # Only the columns and rows the statistics use: the marts hold millions of rows.
        series_outcomes = (
            con.sql(
                f"select {', '.join(f'outcomes.{c}' for c in SERIES_OUTCOME_COLUMNS)}, "
                "instruments.caseness_min, instruments.score_min, instruments.score_max "
                "from marts.series_outcomes as outcomes left join seeds.instruments using (instrument)"
            )
            .pl()
            .lazy()
        )
        trajectory_cells = con.sql(TRAJECTORY_CELLS_SQL).pl().lazy()
        trajectory_series = con.sql(TRAJECTORY_SERIES_SQL).pl().lazy()
        survival = relief_survival_from_series_outcomes(series_outcomes).collect()
        tables: dict[str, pl.DataFrame] = {
            "response_rates": response_rates_from_series_outcomes(series_outcomes).collect(),
            "relief_survival": survival,
            "relief_summary": relief_summary_from_survival(survival.lazy()).collect(),
            "end_change_quantiles": end_change_quantiles_from_series_outcomes(series_outcomes).collect(),
            "case_mix_comparison": case_mix_comparison_from_series_outcomes(series_outcomes).collect(),
            "trajectories": trajectories_from_cells(trajectory_cells, trajectory_series).collect(),
        }
        yield from write_tables(con, "marts", tables, DESCRIPTIONS, keys=KEY_COLUMNS)
