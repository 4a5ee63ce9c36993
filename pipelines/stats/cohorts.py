"""Cohort statistics marts (shared spec §5) from the per-series outcome marts."""

from __future__ import annotations

import polars as pl

from pipelines.stats.cells import counts_of
from pipelines.stats.dimensions import (
    BREAKDOWNS,
    CLINIC,
    CLINIC_SPLITS,
    DOSE_BAND,
    INDICATION,
    NETWORK,
    NETWORK_VALUE,
    PROVIDER,
    PROVIDER_NOT_RECORDED,
    SPLIT_SEPARATOR,
    START_HALF,
    START_MONTH,
    START_PERIODS,
    START_QUARTER,
    START_YEAR,
    split_ids,
)
from pipelines.stats.intervals import mean_bounds, wilson_bounds
from pipelines.stats.survival import events_per_duration, kaplan_meier_from_counts, survival_summary

COHORT = ["dimension", "dimension_value"]
RATE_KEY = [*COHORT, "instrument", "series_kind"]
MAX_TRAJECTORY_INFUSIONS = 12


def cohorts(periods: tuple[str, ...] = (START_MONTH,), breakdowns: bool = False) -> list[tuple[str, pl.Expr]]:
    """Return each dimension with the expression of a row's cohort in it (dimension_value): the network, its
    clinic, indication, clinic and indication, each period of series start asked for (month, quarter, year),
    and with breakdowns the series' provider and dose band (columns provider_id, dose_band), each network-wide
    and within the clinic."""

    def split_of_clinic(value: pl.Expr) -> pl.Expr:  # "<clinic> / <value>", each written as split_id writes it
        return pl.concat_str(split_ids(pl.col("clinic_id")), split_ids(value), separator=SPLIT_SEPARATOR)

    found = [
        (NETWORK, pl.lit(NETWORK_VALUE)),
        (CLINIC, pl.col("clinic_id")),
        (INDICATION, pl.col("primary_indication")),
        (CLINIC_SPLITS[INDICATION], split_of_clinic(pl.col("primary_indication"))),
    ]
    start = pl.col("series_start_at")
    period_values = {
        START_MONTH: start.dt.strftime("%Y-%m"),
        START_QUARTER: pl.concat_str(start.dt.year().cast(pl.String), pl.lit("-Q"), start.dt.quarter().cast(pl.String)),
        START_HALF: pl.concat_str(
            start.dt.year().cast(pl.String), pl.lit("-H"), ((start.dt.month() + 5) // 6).cast(pl.String)
        ),
        START_YEAR: start.dt.year().cast(pl.String),
    }
    for period in periods:
        found.append((period, period_values[period]))
        found.append((CLINIC_SPLITS[period], split_of_clinic(period_values[period])))
    if breakdowns:
        breakdown_values = {
            PROVIDER: pl.col("provider_id").fill_null(PROVIDER_NOT_RECORDED),
            DOSE_BAND: pl.col("dose_band"),
        }
        for breakdown in BREAKDOWNS:
            found.append((breakdown, breakdown_values[breakdown]))
            found.append((CLINIC_SPLITS[breakdown], split_of_clinic(breakdown_values[breakdown])))
    return found


def by_dimension(
    frame: pl.LazyFrame, periods: tuple[str, ...] = (START_MONTH,), breakdowns: bool = False
) -> pl.LazyFrame:
    """Return each row once per cohort it belongs to (cohorts)."""
    return pl.concat(
        [
            frame.with_columns(dimension=pl.lit(name), dimension_value=value)
            for name, value in cohorts(periods, breakdowns)
        ]
    )


def summed_by_dimension(
    cells: pl.LazyFrame,
    keys: list[str],
    counts: list[str],
    periods: tuple[str, ...] = (START_MONTH,),
    breakdowns: bool = False,
    only: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Return the counts of cells summed per cohort (cohorts) and keys: one row per (dimension, dimension_value,
    *keys), as by_dimension followed by a sum would. only: the cohorts to return (dimension, dimension_value and
    some of keys), when not all.

    Each dimension's cells are summed by the columns its value is made of before the value is written: labelling
    every cell once per dimension (millions of strings at a million patients) cost most of the time.
    """
    cells = cells.collect().lazy()  # read once by every dimension, not worked out again for each
    per_dimension = []
    for name, value in cohorts(periods, breakdowns):
        made_of = list(dict.fromkeys(value.meta.root_names()))
        per_dimension.append(
            cells.group_by(*made_of, *keys)
            .agg(pl.col(counts).sum())
            .select(pl.lit(name).alias("dimension"), value.alias("dimension_value"), *keys, *counts)
        )
    # Two ids can be written alike (split_ids): the labelled rows are summed once more.
    summed = pl.concat(per_dimension).group_by(*COHORT, *keys).agg(pl.col(counts).sum())
    if only is None:
        return summed
    # Every cohort summed, then the ones asked for kept: finding first which cells belong to them took longer
    # than summing them all (a million patients' relief cells, 1,206 cohorts asked for: 0.82 to 0.94 s against
    # 0.76 to 0.84 s; 5,769 cohorts: 1.25 to 1.37 s against 0.81 to 0.90 s).
    return summed.join(only, on=only.collect_schema().names(), how="semi", nulls_equal=True)


def rate_columns(prefix: str, count: str, denominator: str = "evaluable_count") -> list[pl.Expr]:
    """Return <prefix>_rate = count / denominator and its 95% Wilson interval; null where the denominator is 0."""
    low, high = wilson_bounds(pl.col(count), pl.col(denominator))
    return [
        pl.when(pl.col(denominator) > 0).then(pl.col(count) / pl.col(denominator)).alias(f"{prefix}_rate"),
        low.alias(f"{prefix}_ci_low"),
        high.alias(f"{prefix}_ci_high"),
    ]


def count_of(condition: pl.Expr) -> pl.Expr:
    return condition.fill_null(False).sum().cast(pl.Int64)


# Each rate of response_rates: (prefix of its columns, its count, its denominator), in the mart's column order.
RATES = (
    ("response", "responder_count", "evaluable_count"),
    ("remission", "remitter_count", "remission_eligible_count"),
    ("reliable_improvement", "reliable_improvement_count", "reliable_change_count"),
    ("reliable_deterioration", "reliable_deterioration_count", "reliable_change_count"),
    ("reliable_recovery", "reliable_recovery_count", "case_at_baseline_count"),
    ("early_ppv", "early_flagged_non_responder_count", "early_non_improver_count"),
    ("early_sensitivity", "early_flagged_non_responder_count", "early_checked_non_responder_count"),
)


# The finest cell the cohorts are made of: each cohort of cohorts(START_PERIODS, breakdowns=True) is a sum of
# cells, so cells counted once serve every cohort, and an incremental refresh adds and takes away the cells of
# the series it replaced (assets/statistics.py) instead of counting millions of series again.
CELL = ["clinic_id", "primary_indication", "series_start_at", "provider_id", "dose_band", "instrument", "series_kind"]


def in_cells(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return the rows with series_start_at truncated to its month, the period of the finest cell."""
    return series_outcomes.with_columns(pl.col("series_start_at").dt.truncate("1mo"))


def response_rate_cells(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return per CELL the evaluable series and each count a rate of RATES is made of (response_rates_from_cells).

    series_outcomes carries caseness_min, the instrument's (seeds.instruments). Remission counts over
    remission-eligible series (§10.2); reliable change over series of instruments with a reliable_change,
    reliable recovery over those with a baseline at or above caseness (§10.3); the early check's positive
    predictive value over the early non-improvers and its sensitivity over the non-responders that had an
    early check (§10.4).
    """
    evaluable = series_outcomes.filter(pl.col("status") == "evaluable")
    early_checked = pl.col("is_early_non_improver").is_not_null()
    return (
        in_cells(evaluable)
        .group_by(CELL)
        .agg(
            evaluable_count=pl.len().cast(pl.Int64),
            responder_count=count_of(pl.col("is_responder")),
            remission_eligible_count=count_of(pl.col("is_remission_eligible")),
            remitter_count=count_of(pl.col("is_remitter") & pl.col("is_remission_eligible")),
            rapid_response_count=count_of(pl.col("is_rapid_response")),
            completed_induction_count=count_of(pl.col("is_completed_induction")),
            reliable_change_count=count_of(pl.col("is_reliable_improvement").is_not_null()),
            reliable_improvement_count=count_of(pl.col("is_reliable_improvement")),
            reliable_deterioration_count=count_of(pl.col("is_reliable_deterioration")),
            case_at_baseline_count=count_of(
                pl.col("is_reliable_recovery").is_not_null() & (pl.col("baseline_score") >= pl.col("caseness_min"))
            ),
            reliable_recovery_count=count_of(pl.col("is_reliable_recovery")),
            early_checked_count=count_of(early_checked),
            early_non_improver_count=count_of(pl.col("is_early_non_improver")),
            early_checked_non_responder_count=count_of(early_checked & ~pl.col("is_responder")),
            early_flagged_non_responder_count=count_of(pl.col("is_early_non_improver") & ~pl.col("is_responder")),
        )
    )


def response_rates_from_cells(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Return the rates of RATES with Wilson intervals per cohort, instrument and series kind, from
    response_rate_cells: thousands of cells are added up into the cohorts, not millions of series."""
    rate_columns_in_order = [
        column
        for prefix, count, denominator in RATES
        for column in (denominator, count, f"{prefix}_rate", f"{prefix}_ci_low", f"{prefix}_ci_high")
    ]
    return (
        summed_by_dimension(
            cells, ["instrument", "series_kind"], counts_of(cells, CELL), START_PERIODS, breakdowns=True
        )
        .with_columns(*[e for rate in RATES for e in rate_columns(*rate)])
        .select(
            *RATE_KEY,
            *dict.fromkeys(rate_columns_in_order),  # a denominator shared by two rates comes once
            "rapid_response_count",
            "completed_induction_count",
            "early_checked_count",
        )
        .sort(RATE_KEY)
    )


def response_rates_from_series_outcomes(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return response_rates_from_cells of the series' cells."""
    return response_rates_from_cells(response_rate_cells(series_outcomes))


def relief_observations(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return responders with a relief duration: relapse is the event, otherwise censored (§5)."""
    return series_outcomes.filter(pl.col("relief_days").is_not_null()).with_columns(
        duration=pl.col("relief_days").cast(pl.Int64), is_event=pl.col("relief_status") == "relapsed"
    )


RELIEF_CELL = [*CELL, "duration"]


def relief_cells(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return per CELL and day of relief the responders' relapses (events) and censorings."""
    return events_per_duration(in_cells(relief_observations(series_outcomes)), CELL)


def relief_survival_from_cells(cells: pl.LazyFrame, only: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Return Kaplan-Meier relief curves per cohort, instrument and series kind from relief_cells: one row per
    distinct day. only: the cohorts (RATE_KEY) to return, when not all."""
    return relief_survival_from_counts(relief_counts_by_cohort(cells, only))


RELIEF_COUNT_KEY = [*RATE_KEY, "duration"]


def relief_counts_by_cohort(cells: pl.LazyFrame, only: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Return relief_cells' events and censored summed per cohort, instrument, series kind and day (duration)."""
    return summed_by_dimension(
        cells, ["instrument", "series_kind", "duration"], ["events", "censored"], breakdowns=True, only=only
    )


def relief_survival_from_counts(counts: pl.LazyFrame) -> pl.LazyFrame:
    """Return relief_survival_from_cells's curves from the counts per cohort and day (relief_counts_by_cohort)."""
    curves = kaplan_meier_from_counts(counts, RATE_KEY)
    return curves.rename({"duration": "day"}).sort([*RATE_KEY, "day"])


def relief_survival_brought_up_to_date(kept_counts: pl.LazyFrame, change: pl.LazyFrame) -> pl.LazyFrame:
    """Return the curves of the cohorts some changed relief cell counts in, from those cohorts' kept counts per
    day (RELIEF_COUNT_KEY, events, censored: the rows of the curves published before) and the change of the
    relief cells (added minus removed, per cell): counts add up, so a cohort's counts now are the kept ones plus
    its cells' change, and its curve is worked out from them as from every cell. A day whose counts come to 0
    goes, as it would from a count anew; so does a cohort without days left.

    At a million patients this takes a tenth of a second where summing every relief cell into every cohort
    took more than one.
    """
    change_by_cohort = relief_counts_by_cohort(change)
    schema = change_by_cohort.collect_schema()
    counts = pl.concat([kept_counts.select(schema.names()).cast(schema), change_by_cohort])
    summed = counts.group_by(RELIEF_COUNT_KEY).agg(pl.col("events", "censored").sum())
    return relief_survival_from_counts(summed.filter((pl.col("events") != 0) | (pl.col("censored") != 0)))


def cohorts_of_cells(cells: pl.LazyFrame, periods: tuple[str, ...], breakdowns: bool) -> pl.LazyFrame:
    """Return the cohorts (RATE_KEY) of cohorts(periods, breakdowns) that some of the cells (CELL) count in, named
    as summed_by_dimension names them."""
    marked = cells.select(*CELL, cells=pl.lit(1, dtype=pl.Int64))
    return summed_by_dimension(marked, ["instrument", "series_kind"], ["cells"], periods, breakdowns).select(RATE_KEY)


def relief_summary_from_survival(relief_survival: pl.LazyFrame) -> pl.LazyFrame:
    """Return per cohort, instrument and series kind: responders, relapses, median relief with its CI, S(28), S(56)."""
    return survival_summary(relief_survival.rename({"day": "duration"}), RATE_KEY).sort(RATE_KEY)


# Each (clinic, indication) cell's scores of the trajectories, summarised where they are stored: count, mean
# and sum of squared deviations pool exactly into any cohort (trajectories_from_cells), so millions of follow-ups
# are never moved out of DuckDB. One row per (clinic_id, primary_indication, instrument, infusions_received), with
# series_count, the series the scores of its (clinic_id, primary_indication, instrument) belong to (a series lies
# in one cell). The scores are selected once for both (two scans of the follow-ups took twice as long).
TRAJECTORY_CELLS_SQL = f"""
    with scores as materialized (
        select clinic_id, primary_indication, instrument, infusions_received, pct_change, series_id
        from marts.assessment_outcomes
        where series_kind = 'induction' and is_in_response_window and pct_change is not null
            and infusions_received <= {MAX_TRAJECTORY_INFUSIONS}
    ),

    cells as (
        select
            clinic_id, primary_indication, instrument, infusions_received,
            count(*) as score_count,
            avg(pct_change) as mean_pct_change,
            var_pop(pct_change) * count(*) as squared_deviations
        from scores
        group by all
    ),

    series as (
        select clinic_id, primary_indication, instrument, count(distinct series_id) as series_count
        from scores
        group by all
    )

    select cells.*, series.series_count
    from cells
    inner join series using (clinic_id, primary_indication, instrument)
"""


def trajectories_from_cells(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Return mean % change from baseline with a 95% t interval by infusions received (0-12) during inductions.

    cells: the rows of TRAJECTORY_CELLS_SQL. Cells pool into cohorts by the
    parallel-variance formula (Chan, Golub and LeVeque 1979): counts and
    sums add; the squared deviations add with each cell's n (mean - pooled
    mean)^2. Infusion 0 is the baseline itself (0% by definition); later
    points use the scores of the response window, pre-infusion and after the
    series, counted once per series at infusion 0.
    """
    key = [*COHORT, "instrument", "infusions_received"]
    pooled = (
        by_dimension(cells, periods=())
        .group_by(key)
        .agg(
            n=pl.col("score_count").sum().cast(pl.Int64),
            total=(pl.col("score_count") * pl.col("mean_pct_change")).sum(),
            squares=(pl.col("squared_deviations") + pl.col("score_count") * pl.col("mean_pct_change") ** 2).sum(),
        )
        .with_columns(mean_pct_change=pl.col("total") / pl.col("n"))
        .with_columns(
            sd=pl.when(pl.col("n") > 1).then(
                (
                    (pl.col("squares") - pl.col("n") * pl.col("mean_pct_change") ** 2).clip(0.0) / (pl.col("n") - 1)
                ).sqrt()
            )
        )
    )
    low, high = mean_bounds(pl.col("mean_pct_change"), pl.col("sd"), pl.col("n"))
    points = pooled.select(
        *key, pl.col("n").alias("score_count"), "mean_pct_change", low.alias("ci_low"), high.alias("ci_high")
    )
    baselines = (
        by_dimension(cells.select("clinic_id", "primary_indication", "instrument", "series_count").unique(), periods=())
        .group_by([*COHORT, "instrument"])
        .agg(score_count=pl.col("series_count").sum().cast(pl.Int64))
        .with_columns(
            infusions_received=pl.lit(0, dtype=pl.Int32),
            mean_pct_change=pl.lit(0.0),
            ci_low=pl.lit(0.0),
            ci_high=pl.lit(0.0),
        )
    )
    return pl.concat(
        [points, baselines.select(*key, "score_count", "mean_pct_change", "ci_low", "ci_high")],
        how="vertical_relaxed",
    ).sort(key)


QUANTILE_STEPS = 20


# The cells of the quantiles: quantiles do not add up, but a count of series per distinct value does, and the
# values of any cohort are its cells' values each repeated its count of times. Scores are whole numbers, so a
# cell holds a few hundred distinct values, not its thousands of series.
END_CHANGE_CELL = ["clinic_id", "primary_indication", "instrument", "series_kind", "end_pct_change"]


def end_change_cells(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return the evaluable series per (clinic, indication, instrument, series kind) and end-of-series % change
    (null when unknown)."""
    evaluable = series_outcomes.filter(pl.col("status") == "evaluable")
    return evaluable.group_by(END_CHANGE_CELL).agg(series_count=pl.len().cast(pl.Int64))


def end_change_quantiles_from_cells(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Return the 2.5%, 7.5%, ..., 97.5% quantiles of end-of-series % change per cohort from end_change_cells:
    a waterfall without patients.

    Interpolated quantiles at bin midpoints summarise the distribution; the
    minimum and maximum, which are one patient's values, are left out.
    """
    levels = [(step + 0.5) / QUANTILE_STEPS for step in range(QUANTILE_STEPS)]
    # Each group's values are ordered once and every level read from them, with linear interpolation between
    # the two nearest ranks (numpy's default, and Polars' "linear"): twenty quantile() calls selected afresh
    # for each level, most of this mart's time.
    ordered, known = pl.col("ordered"), pl.col("known_count")
    quantiles = []
    for level in levels:
        rank = (known - 1) * level
        below = rank.floor().cast(pl.Int64)
        above = rank.ceil().cast(pl.Int64)
        low, high = ordered.list.get(below, null_on_oob=True), ordered.list.get(above, null_on_oob=True)
        quantiles.append(low + (high - low) * (rank - below))
    is_known = pl.col("end_pct_change").is_not_null()
    cells = cells.collect().lazy()  # read by every dimension
    per_dimension = [
        # The cohort's values, each once with its count, in ascending order: repeated, they are its values sorted.
        cells.group_by(value.alias("dimension_value"), "instrument", "series_kind", "end_pct_change")
        .agg(pl.col("series_count").sum())
        .sort("end_pct_change")
        .group_by("dimension_value", "instrument", "series_kind", maintain_order=True)
        .agg(
            evaluable_count=pl.col("series_count").sum().cast(pl.Int64),
            ordered=pl.col("end_pct_change")
            .filter(is_known)
            .repeat_by(pl.col("series_count").filter(is_known))
            .list.explode(keep_nulls=False, empty_as_null=False),
        )
        .with_columns(known_count=pl.col("ordered").list.len())
        .with_columns(quantiles=pl.concat_list(quantiles))  # all null for a group with no value
        .drop("ordered", "known_count")
        .with_columns(dimension=pl.lit(name))
        for name, value in cohorts(periods=())
    ]
    return (
        pl.concat(per_dimension, how="diagonal")
        .with_columns(quantile=pl.lit(levels))
        .explode("quantiles", "quantile")
        .rename({"quantiles": "end_pct_change"})
        .select(*RATE_KEY, "quantile", "end_pct_change", "evaluable_count")
        .sort([*RATE_KEY, "quantile"])
    )
