"""The publishable aggregates: the statistics marts after disclosure control, the only data a director's page reads.

Every frame here has been through pipelines.reports.disclosure: small counts
and what derives from them hidden (null), hidden cells safe from totals,
unions and differences, rates rounded, curves cut to safe points. A page
draws these frames and nothing else.
"""

from __future__ import annotations

import dataclasses

import duckdb
import polars as pl

from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.disclosure import (
    finest_trend_grain,
    is_small,
    rounded,
    safe_steps,
    safe_survival_points,
    suppress_cells,
    with_parent,
)
from pipelines.stats.dimensions import (
    CLINIC,
    CLINIC_SPLITS,
    NETWORK,
    NETWORK_VALUE,
    SPLIT_SEPARATOR,
    START_PERIODS,
)

ADVERSE_EVENTS = ("nausea", "vomiting", "dissociation", "dysphoria", "headache", "dizziness", "hypertension", "other")
RATE_COLUMNS = (
    "response_rate",
    "response_ci_low",
    "response_ci_high",
    "remission_rate",
    "remission_ci_low",
    "remission_ci_high",
)
# A waterfall of quantiles needs enough series that no 5% slice is one patient's value.
WATERFALL_MIN_SERIES = 20
COHORT_TABLE = ["dimension", "parent"]
RATE_TABLE = [*COHORT_TABLE, "instrument", "series_kind"]


@dataclasses.dataclass
class Publishable:
    """Every aggregate the directors' pages show, after disclosure control."""

    as_of: str
    rules: OutcomeRules
    disclosure_control: bool
    clinics: list[str]  # clinics with a page: at least min_cell_size patients
    response_rates: pl.DataFrame
    trends: pl.DataFrame  # response_rates over periods of series start, at the finest grain that survives
    relief_survival: pl.DataFrame
    relief_summary: pl.DataFrame
    trajectories: pl.DataFrame
    end_change_quantiles: pl.DataFrame
    completion_funnel: pl.DataFrame
    booster_intervals: pl.DataFrame
    safety: pl.DataFrame
    dissociation: pl.DataFrame
    adherence: pl.DataFrame
    patients: pl.DataFrame
    statuses: pl.DataFrame

    @property
    def min_cell_size(self) -> int:
        return self.rules.min_cell_size if self.disclosure_control else 0


def period_of(dimension: pl.Expr) -> pl.Expr:
    """The period of series start a dimension splits by (start_month for clinic_start_month), else null."""
    mapping = {**{period: period for period in START_PERIODS}, **{CLINIC_SPLITS[p]: p for p in START_PERIODS}}
    return dimension.replace_strict(mapping, default=None)


def publishable_rates(rates: pl.DataFrame, k: int) -> pl.DataFrame:
    """Response and remission rates safe to publish: within each cohort's table, and across the clinics of a
    period (whose cells add up to the network's cell of that period)."""
    clinic_periods = [CLINIC_SPLITS[p] for p in START_PERIODS]
    framed = with_parent(rates).with_columns(
        period=period_of(pl.col("dimension")),
        across_clinics=pl.when(pl.col("dimension").is_in(clinic_periods)).then(
            pl.concat_str(
                pl.col("dimension"), pl.lit(":"), pl.col("dimension_value").str.split(SPLIT_SEPARATOR).list.last()
            )
        ),
    )
    suppressed = suppress_cells(
        framed,
        tables=[RATE_TABLE, ["across_clinics", "instrument", "series_kind"]],
        total="evaluable_count",
        measures={
            "responder_count": ["response_rate", "response_ci_low", "response_ci_high"],
            "remitter_count": ["remission_rate", "remission_ci_low", "remission_ci_high"],
            "rapid_response_count": [],
            "completed_induction_count": [],
        },
        min_cell_size=k,
    )
    return rounded(suppressed.drop("across_clinics"), RATE_COLUMNS)


def publishable(con: duckdb.DuckDBPyConnection, rules: OutcomeRules, as_of: str, disclosure_control: bool = True):
    """Return the publishable aggregates of a warehouse."""
    k = rules.min_cell_size if disclosure_control else 0

    def table(sql: str) -> pl.DataFrame:
        return con.sql(sql).pl()

    patient_counts = table(
        f"select '{NETWORK}' as dimension, '{NETWORK_VALUE}' as dimension_value, count(*) as patient_count "
        f"from staging.patients union all select '{CLINIC}', clinic_id, count(*) from staging.patients group by all"
    )
    # A clinic with fewer than min_cell_size patients has no page (it still counts in the network).
    clinics = sorted(
        row["dimension_value"]
        for row in patient_counts.filter(pl.col("dimension") == CLINIC).iter_rows(named=True)
        if not is_small(row["patient_count"], k)
    )
    rates = publishable_rates(table("select * from marts.response_rates"), k)
    is_period = pl.col("period").is_not_null()
    summary = suppress_cells(
        with_parent(table("select * from marts.relief_summary")),
        tables=[RATE_TABLE],
        total="responder_count",
        measures={
            "relapse_count": ["median_relief_days", "median_ci_low", "median_ci_high", "survival_28d", "survival_56d"]
        },
        min_cell_size=k,
    )
    summary = rounded(summary, ["survival_28d", "survival_56d"])
    curve_key = ["dimension", "dimension_value", "instrument", "series_kind"]
    # A curve is drawn only for cohorts whose relapses may be shown, and only at its safe points.
    shown = summary.filter(pl.col("relapse_count").is_not_null()).select(curve_key)
    survival = safe_survival_points(
        table("select * from marts.relief_survival").join(shown, on=curve_key), curve_key, k
    )
    safety = suppress_cells(
        with_parent(table("select * from marts.safety_summary")),
        tables=[COHORT_TABLE],
        total="infusion_count",
        measures={
            "hypertensive_count": ["hypertensive_rate"],
            "desaturation_count": ["desaturation_rate"],
            **{f"{code}_count": [f"{code}_per_100"] for code in ADVERSE_EVENTS},
        },
        min_cell_size=k,
        derived_from_total=("mean_systolic_rise",),
    )
    funnel = with_parent(table("select * from marts.completion_funnel"))
    funnel = rounded(
        safe_steps(funnel, ["dimension", "dimension_value"], "infusion_number", "inductions_reaching", k),
        ["share_reaching"],
    )
    return Publishable(
        as_of=as_of,
        rules=rules,
        disclosure_control=disclosure_control,
        clinics=clinics,
        response_rates=rates.filter(~is_period),
        trends=trend_rows(rates.filter(is_period)),
        relief_survival=survival,
        relief_summary=summary,
        trajectories=suppress_cells(
            with_parent(table("select * from marts.trajectories")),
            tables=[[*COHORT_TABLE, "instrument", "infusions_received"]],
            total="score_count",
            measures={},
            min_cell_size=k,
            derived_from_total=("mean_pct_change", "ci_low", "ci_high"),
        ),
        end_change_quantiles=table("select * from marts.end_change_quantiles").filter(
            pl.col("evaluable_count") >= max(k, WATERFALL_MIN_SERIES)
        ),
        completion_funnel=funnel,
        booster_intervals=suppress_cells(
            with_parent(table("select * from marts.booster_intervals")),
            tables=[COHORT_TABLE],
            total="interval_count",
            measures={},
            min_cell_size=k,
            derived_from_total=("median_days", "p25_days", "p75_days"),
        ),
        safety=rounded(safety, ["hypertensive_rate", "desaturation_rate"]),
        dissociation=suppress_cells(
            with_parent(table("select * from marts.dissociation_by_infusion_number")),
            tables=[[*COHORT_TABLE, "infusion_number"]],
            total="infusion_count",
            measures={"dissociation_count": ["dissociation_per_100"], "cadss_count": ["mean_cadss"]},
            min_cell_size=k,
        ),
        adherence=rounded(
            suppress_cells(
                with_parent(table("select * from marts.measurement_adherence")),
                tables=[COHORT_TABLE],
                total="infusion_count",
                measures={"measured_infusion_count": ["adherence_rate"]},
                min_cell_size=k,
            ),
            ["adherence_rate"],
        ),
        patients=suppress_cells(
            patient_counts,
            tables=[["dimension"]],
            total="patient_count",
            measures={},
            min_cell_size=k,
        ),
        statuses=suppress_cells(
            table(
                f"select '{NETWORK}' as dimension, '{NETWORK_VALUE}' as dimension_value, status, count(*) as "
                "series_count from marts.series_outcomes group by all union all "
                "select 'clinic', clinic_id, status, count(*) from marts.series_outcomes group by all"
            ),
            tables=[["dimension", "dimension_value"], ["dimension", "status"]],
            total="series_count",
            measures={},
            min_cell_size=k,
        ),
    )


def trend_rows(period_rates: pl.DataFrame) -> pl.DataFrame:
    """Return each trend (cohort, instrument, series kind) at the finest period of series start that survives."""
    labelled = period_rates.with_columns(
        cohort=pl.when(pl.col("dimension").is_in(list(CLINIC_SPLITS.values())))
        .then(pl.col("parent"))
        .otherwise(pl.lit(NETWORK_VALUE)),
        label=pl.col("dimension_value").str.split(SPLIT_SEPARATOR).list.last(),
    )
    return finest_trend_grain(labelled, ["cohort", "instrument", "series_kind"], "response_rate")
