"""The publishable aggregates: the statistics marts after disclosure control, the only data a director's page reads.

Every frame here has been through pipelines.reports.disclosure: small counts
and what derives from them hidden (null), hidden cells safe from totals,
unions and differences, rates rounded, curves cut to safe points. A page
draws these frames and nothing else.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

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
    INDICATION,
    NETWORK,
    NETWORK_VALUE,
    SPLIT_SEPARATOR,
    START_MONTH,
    START_PERIODS,
)
from pipelines.stats.intervals import mean_bounds, t_quantile, wilson_bounds

ADVERSE_EVENTS = ("nausea", "vomiting", "dissociation", "dysphoria", "headache", "dizziness", "hypertension", "other")
# Each published rate's columns, by the prefix of response_rates (pipelines.stats.cohorts.RATES).
RATE_PREFIXES = (
    "response",
    "remission",
    "reliable_improvement",
    "reliable_deterioration",
    "reliable_recovery",
    "early_ppv",
    "early_sensitivity",
)
RATE_COLUMNS = tuple(f"{prefix}_{part}" for prefix in RATE_PREFIXES for part in ("rate", "ci_low", "ci_high"))


def rate_of(prefix: str) -> list[str]:
    return [f"{prefix}_rate", f"{prefix}_ci_low", f"{prefix}_ci_high"]


# Disclosure control of response_rates, level by level: each denominator is a count within the level above's (a
# subset of its series), hidden with its complement like any count; then the counts within it. (denominator,
# {count: the rates derived from it}).
RATE_LEVELS = (
    (
        "evaluable_count",
        {
            "responder_count": rate_of("response"),
            "rapid_response_count": [],
            "completed_induction_count": [],
            "remission_eligible_count": [],
            "reliable_change_count": [],
            "case_at_baseline_count": [],
            "early_checked_count": [],
        },
    ),
    ("remission_eligible_count", {"remitter_count": rate_of("remission")}),
    (
        "reliable_change_count",
        {
            "reliable_improvement_count": rate_of("reliable_improvement"),
            "reliable_deterioration_count": rate_of("reliable_deterioration"),
        },
    ),
    ("case_at_baseline_count", {"reliable_recovery_count": rate_of("reliable_recovery")}),
    ("early_checked_count", {"early_non_improver_count": [], "early_checked_non_responder_count": []}),
    ("early_non_improver_count", {"early_flagged_non_responder_count": rate_of("early_ppv")}),
    ("early_checked_non_responder_count", {"early_flagged_for_sensitivity": rate_of("early_sensitivity")}),
)
# The suicidality aggregate looks at the patients with a PHQ-9 (with items) in this many days before the as-of
# time: the patients a clinic is treating now, not everyone it ever saw.
SUICIDALITY_WINDOW_DAYS = 90
# A waterfall of quantiles needs enough series that no 5% slice is one patient's value.
WATERFALL_MIN_SERIES = 20
COHORT_TABLE = ["dimension", "parent"]
# The relief curves pages draw: each cohort's whole and by indication (figures.whole_and_by_indication). The mart's
# curves by period of start, provider and dose band, five points in six at a million patients, are for analysts.
CURVE_DIMENSIONS = (NETWORK, CLINIC, INDICATION, CLINIC_SPLITS[INDICATION])
RATE_TABLE = [*COHORT_TABLE, "instrument", "series_kind"]


@dataclasses.dataclass
class Publishable:
    """Every aggregate the directors' pages show, after disclosure control."""

    as_of: str
    period: str  # the months series started in: "2023-07 to 2026-06"
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
    suicidality: pl.DataFrame  # patients whose latest PHQ-9 with items in the window flags item 9, per cohort
    case_mix: pl.DataFrame  # clinics' observed and expected responders (spec §10.5) where their responders are shown
    clinic_names: dict[str, str] = dataclasses.field(default_factory=dict)  # clinic_id: clinic_name, where given

    @property
    def min_cell_size(self) -> int:
        return self.rules.min_cell_size if self.disclosure_control else 0

    def name_of(self, clinic: str) -> str:
        """Return how pages name a clinic: its clinic_name, else its clinic_id (spec §10.1)."""
        return self.clinic_names.get(clinic) or clinic


def period_of(dimension: pl.Expr) -> pl.Expr:
    """The period of series start a dimension splits by (start_month for clinic_start_month), else null."""
    mapping = {**{period: period for period in START_PERIODS}, **{CLINIC_SPLITS[p]: p for p in START_PERIODS}}
    return dimension.replace_strict(mapping, default=None)


def suppress_levels(
    frame: pl.DataFrame, levels: tuple[tuple[str, dict[str, list[str]]], ...], tables: list[list[str]], k: int
) -> pl.DataFrame:
    """Return rates safe to publish, judged level by level (RATE_LEVELS' form): each level's denominator is a
    count within the level above's."""
    # Each level is judged on its denominator's true value (_all_<name>): a denominator hidden only because the
    # series outside it are few (93 of 96 eligible) still carries its rates, without its count; one that is
    # small itself, or lies in a hidden cell, hides everything within it.
    sub_denominators = [denominator for denominator, _ in levels[1:]]
    suppressed = frame.with_columns([pl.col(d).alias(f"_all_{d}") for d in sub_denominators])
    for level, (denominator, measures) in enumerate(levels):
        total = denominator if level == 0 else f"_all_{denominator}"
        gone = pl.col(total).is_null()
        suppressed = suppress_cells(
            suppressed.with_columns(
                [pl.when(gone).then(None).otherwise(pl.col(c)).alias(c) for m, d in measures.items() for c in (m, *d)]
            ),
            tables=tables,
            total=total,
            measures=measures,
            min_cell_size=k,
        )
        gone = pl.col(total).is_null()
        suppressed = suppressed.with_columns(
            [
                pl.when(gone).then(None).otherwise(pl.col(f"_all_{m}")).alias(f"_all_{m}")
                for m in measures
                if m in sub_denominators
            ]
        )
        if level:
            # A count with its rate but not its denominator would give the denominator away.
            hidden_denominator = pl.col(denominator).is_null()
            suppressed = suppressed.with_columns(
                [pl.when(hidden_denominator).then(None).otherwise(pl.col(m)).alias(m) for m in measures]
            )
    return suppressed.drop(f"_all_{d}" for d in sub_denominators)


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
    # The early check's flagged non-responders count in two rates (PPV and sensitivity), each within its own
    # denominator: judged once in each, and hidden in both where either hides them.
    suppressed = framed.with_columns(early_flagged_for_sensitivity=pl.col("early_flagged_non_responder_count"))
    suppressed = suppress_levels(
        suppressed, RATE_LEVELS, [RATE_TABLE, ["across_clinics", "instrument", "series_kind"]], k
    )
    # One shown rate and the other's denominator would give the hidden count away: both or neither.
    either_hidden = pl.col("early_ppv_rate").is_null() | pl.col("early_sensitivity_rate").is_null()
    suppressed = suppressed.with_columns(
        [
            pl.when(either_hidden).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("early_flagged_non_responder_count", *rate_of("early_ppv"), *rate_of("early_sensitivity"))
        ]
    ).drop("early_flagged_for_sensitivity")
    return rounded(suppressed.drop("across_clinics"), RATE_COLUMNS)


def publishable(
    con: duckdb.DuckDBPyConnection, rules: OutcomeRules, as_of: str, disclosure_control: bool = True
) -> Publishable:
    """Return the publishable aggregates of a warehouse."""
    k = rules.min_cell_size if disclosure_control else 0

    def table(sql: str, params: list | None = None) -> pl.DataFrame:
        return con.sql(sql, params=params).pl()

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
    all_rates = table("select * from marts.response_rates")
    rates = publishable_rates(all_rates, k)
    month_rates = with_parent(all_rates).filter(pl.col("dimension").is_in([START_MONTH, CLINIC_SPLITS[START_MONTH]]))
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
    drawn = table("select * from marts.relief_survival where list_contains(?, dimension)", [list(CURVE_DIMENSIONS)])
    survival = safe_survival_points(drawn.join(shown, on=curve_key), curve_key, k)
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
    window_end = datetime.fromisoformat(as_of)
    suicidality = con.sql(
        f"""
        with latest as (
            select patient_id, arg_max(phq9_item9, administered_at) as item9
            from staging.assessments
            where instrument = 'phq9' and phq9_item9 is not null
                and administered_at > ?::timestamp - interval {SUICIDALITY_WINDOW_DAYS} day
                and administered_at <= ?::timestamp
            group by patient_id
        )
        select '{NETWORK}' as dimension, '{NETWORK_VALUE}' as dimension_value, count(*) as scored_count,
            count(*) filter (where item9 >= 1) as flagged_count
        from latest
        union all
        select '{CLINIC}', p.clinic_id, count(*), count(*) filter (where item9 >= 1)
        from latest inner join staging.patients as p using (patient_id)
        group by all
        """,
        params=[window_end, window_end],
    ).pl()
    # O/E adds nothing an outsider could not get from the clinic's responders and the network's rates: it is shown
    # where the clinic's responders and evaluable series are (so never a small count), rounded like the rates.
    shown_responders = rates.filter((pl.col("dimension") == CLINIC) & pl.col("responder_count").is_not_null()).select(
        pl.col("dimension_value").alias("clinic_id"), "instrument", "series_kind"
    )
    case_mix = (
        table("select * from marts.case_mix_comparison")
        .join(shown_responders, on=["clinic_id", "instrument", "series_kind"], how="semi")
        .with_columns(
            pl.col("expected_responders").round(1),
            pl.col("observed_expected_ratio", "ratio_ci_low", "ratio_ci_high").round(2),
        )
    )
    rounded_case_mix = rounded(case_mix, ["crude_response_rate", "network_response_rate"])
    clinic_names = dict(
        con.execute("select clinic_id, clinic_name from staging.clinics where clinic_name is not null").fetchall()
    )
    first, last = con.execute(
        "select strftime(min(series_start_at), '%Y-%m'), strftime(max(series_start_at), '%Y-%m') "
        "from marts.treatment_series"
    ).fetchall()[0]
    return Publishable(
        as_of=as_of,
        period="" if first is None else f"{first} to {last}",
        rules=rules,
        disclosure_control=disclosure_control,
        clinics=clinics,
        response_rates=rates.filter(~is_period),
        trends=trend_rows(rates.filter(is_period), month_rates, k),
        relief_survival=survival,
        relief_summary=summary,
        trajectories=publishable_trajectories(table("select * from marts.trajectories"), k),
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
        suicidality=rounded(
            suppress_cells(
                with_parent(suicidality).with_columns(flagged_rate=pl.col("flagged_count") / pl.col("scored_count")),
                tables=[COHORT_TABLE],
                total="scored_count",
                measures={"flagged_count": ["flagged_rate"]},
                min_cell_size=k,
            ),
            ["flagged_rate"],
        ),
        case_mix=rounded_case_mix,
        clinic_names=clinic_names,
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


TRAJECTORY_KEY = ["dimension", "dimension_value", "instrument"]


def publishable_trajectories(trajectories: pl.DataFrame, k: int) -> pl.DataFrame:
    """Return the mean change by infusion number safe to publish, with the last infusion numbers grouped.

    Points whose scores are few are hidden (with a second point where a table's total would reveal them). Where
    a cohort's curve ends in hidden points, those are pooled into one point ("7+": the scores after 7 or more
    infusions) when they hold at least k scores together, so the curve runs on instead of stopping (spec §10.8:
    the coarser grain, not nothing). Each point carries its label (infusions_label).
    """
    framed = with_parent(trajectories).with_columns(infusions_label=pl.col("infusions_received").cast(pl.String))
    shown = suppress_cells(
        framed,
        tables=[[*COHORT_TABLE, "instrument", "infusions_received"]],
        total="score_count",
        measures={},
        min_cell_size=k,
        derived_from_total=("mean_pct_change", "ci_low", "ci_high"),
    )
    if k <= 1 or shown.is_empty():
        return shown
    # The true points beside the published ones: the tail after a curve's last shown point is pooled from them.
    both = framed.with_columns(is_shown=shown["score_count"].is_not_null()).sort(*TRAJECTORY_KEY, "infusions_received")
    last_shown = pl.col("infusions_received").filter(pl.col("is_shown")).max().over(TRAJECTORY_KEY)
    # A curve with no point shown at all is a cohort too small to draw: nothing of it is pooled.
    tail = both.filter(pl.col("infusions_received") > last_shown)
    # Each point's standard deviation from its t interval: sd = half-width x sqrt(n) / t(n - 1); 0 for one score.
    n = pl.col("score_count")
    sd = ((pl.col("ci_high") - pl.col("mean_pct_change")) * n.cast(pl.Float64).sqrt() / t_quantile(n - 1)).fill_null(
        0.0
    )
    pooled = (
        tail.with_columns(sd=sd)
        .group_by([*TRAJECTORY_KEY, "parent"])
        .agg(
            infusions_received=pl.col("infusions_received").min(),
            points=pl.len(),
            score_count=n.sum(),
            mean_pct_change=(n * pl.col("mean_pct_change")).sum() / n.sum(),
            # Sum of squared deviations about each point's mean, then about the pooled mean (Chan et al. 1979).
            within=((n - 1) * pl.col("sd") ** 2).sum(),
            squares=(n * pl.col("mean_pct_change") ** 2).sum(),
        )
        .filter((pl.col("score_count") >= k) & (pl.col("points") > 1))
        .with_columns(
            spread=(
                (pl.col("within") + pl.col("squares") - pl.col("score_count") * pl.col("mean_pct_change") ** 2).clip(0)
                / (pl.col("score_count") - 1)
            ).sqrt(),
            infusions_label=pl.col("infusions_received").cast(pl.String) + "+",
        )
    )
    low, high = mean_bounds(pl.col("mean_pct_change"), pl.col("spread"), pl.col("score_count"))
    grouped = pooled.with_columns(ci_low=low, ci_high=high).select(shown.columns)
    # The pooled tail replaces its hidden points: the group is the only row shown past the last single point.
    return pl.concat([shown, grouped.cast(shown.schema)], how="vertical")


TREND_KEY = ["cohort", "instrument", "series_kind"]
# A trend worth drawing has this many points; fewer calendar periods survive at a small clinic.
TREND_MIN_POINTS = 4
BALANCED = "balanced"
# The count and denominator of each rate a trend draws (remission over remission-eligible series, spec §10.2).
# A trend has one grain (one x axis) for both of its lines; remission, rarer than response, often needs a
# coarser one.
TREND_COUNTS = {
    "response_rate": ("responder_count", "evaluable_count"),
    "remission_rate": ("remitter_count", "remission_eligible_count"),
}
# Disclosure control of a trend's periods, level by level as RATE_LEVELS.
TREND_LEVELS = (
    ("evaluable_count", {"responder_count": rate_of("response"), "remission_eligible_count": []}),
    ("remission_eligible_count", {"remitter_count": rate_of("remission")}),
)


def trend_rows(period_rates: pl.DataFrame, month_rates: pl.DataFrame, k: int) -> pl.DataFrame:
    """Return each trend (cohort, instrument, series kind) at one grain for response and remission: the finest
    calendar period of series start at which both survive disclosure control, or where that leaves fewer than
    TREND_MIN_POINTS points, consecutive months grouped into periods of balanced size (each with at least k of
    every count and its complement) instead. A trend whose remission no grain shows at TREND_MIN_POINTS points
    is drawn at response's own grain with its remission left out (null), rather than as a line of a point or
    two."""
    periods, months = labelled(period_rates), labelled(month_rates)
    both = trend_grain(periods, months, k, list(TREND_COUNTS))
    response = trend_grain(periods, months, k, ["response_rate"])
    both_shown = shown_points(both, list(TREND_COUNTS))
    response_shown = shown_points(both, ["response_rate"]).join(
        shown_points(response, ["response_rate"]), on=TREND_KEY, suffix="_alone"
    )
    drawn_together = pl.concat(
        [
            both_shown.filter(pl.col("shown") >= TREND_MIN_POINTS).select(TREND_KEY),
            response_shown.filter(pl.col("shown") >= pl.col("shown_alone")).select(TREND_KEY),
        ]
    ).unique()
    remission = [c for c in response.columns if c.startswith("remission_")]
    return pl.concat(
        [
            both.join(drawn_together, on=TREND_KEY),
            response.join(drawn_together, on=TREND_KEY, how="anti").with_columns(
                [pl.lit(None, dtype=response.schema[c]).alias(c) for c in ["remitter_count", *remission]]
            ),
        ],
        how="diagonal_relaxed",
    )


def trend_grain(periods: pl.DataFrame, months: pl.DataFrame, k: int, shown: list[str]) -> pl.DataFrame:
    """Return each trend at the finest calendar period at which every rate of shown survives; where that
    leaves fewer than TREND_MIN_POINTS points, at months grouped into periods of balanced size instead.
    periods, months: labelled rates of every calendar period and of months."""
    calendar = finest_trend_grain(periods, TREND_KEY, shown)
    # Months are grouped (a search in Python) only for the trends too sparse at every calendar period.
    drawn_by_calendar = shown_points(calendar, shown).filter(pl.col("shown") >= TREND_MIN_POINTS)
    sparse_months = months.join(drawn_by_calendar, on=TREND_KEY, how="anti")
    balanced = balanced_periods(sparse_months, k, [TREND_COUNTS[rate] for rate in shown])
    better = (
        shown_points(balanced, shown)
        .join(shown_points(calendar, shown), on=TREND_KEY, how="left", suffix="_calendar")
        .filter(
            (pl.col("shown_calendar").fill_null(0) < TREND_MIN_POINTS)
            & (pl.col("shown") > pl.col("shown_calendar").fill_null(0))
        )
        .select(TREND_KEY)
    )
    return pl.concat(
        [calendar.join(better, on=TREND_KEY, how="anti"), balanced.join(better, on=TREND_KEY)], how="diagonal_relaxed"
    )


def shown_points(trends: pl.DataFrame, shown: list[str]) -> pl.DataFrame:
    """Return how many points of each trend show every rate of shown."""
    return trends.group_by(TREND_KEY).agg(shown=pl.all_horizontal(pl.col(shown).is_not_null()).sum())


def labelled(rates: pl.DataFrame) -> pl.DataFrame:
    """Rates of period cells with the trend they belong to (cohort: the clinic, or the network) and their label."""
    return rates.with_columns(
        cohort=pl.when(pl.col("dimension").is_in(list(CLINIC_SPLITS.values())))
        .then(pl.col("parent"))
        .otherwise(pl.lit(NETWORK_VALUE)),
        label=pl.col("dimension_value").str.split(SPLIT_SEPARATOR).list.last(),
    )


def months_in_periods(rows: list[dict], k: int, target: int, counts: list[tuple[str, str]]) -> list[list[dict]]:
    """Group consecutive months into as many periods as possible of at least k of each count of counts (count,
    its denominator), k of each complement within its denominator and target evaluable series each (dynamic
    programming over where periods end); months left at the end join the last period, and all of them form one
    period when no grouping holds."""

    # Counts of months [start, end) as differences of running totals: each candidate period is judged in
    # constant time (summing its months for each was most of the pages' trend time at twenty clinics).
    def running(column: str) -> list[int]:
        before = [0]
        for row in rows:
            before.append(before[-1] + row[column])
        return before

    evaluable_before = running("evaluable_count")
    counts_before = [(running(count), running(denominator)) for count, denominator in counts]

    def holds(start: int, end: int) -> bool:
        if evaluable_before[end] - evaluable_before[start] < target:
            return False
        for count_before, denominator_before in counts_before:
            count = count_before[end] - count_before[start]
            if count < k or denominator_before[end] - denominator_before[start] - count < k:
                return False
        return True

    most: dict[int, tuple[int, int]] = {0: (0, 0)}  # end -> (periods, start of the last period)
    for end in range(1, len(rows) + 1):
        for start in range(end):
            if start in most and holds(start, end) and most[start][0] + 1 > most.get(end, (0, 0))[0]:
                most[end] = (most[start][0] + 1, start)
    end = max(most, key=lambda position: (most[position][0], position))
    if most[end][0] == 0:
        return [rows] if rows else []
    blocks = []
    position = end
    while position:
        start = most[position][1]
        blocks.insert(0, rows[start:position])
        position = start
    blocks[-1] = blocks[-1] + rows[end:]
    return blocks


def balanced_periods(months: pl.DataFrame, k: int, counts: list[tuple[str, str]]) -> pl.DataFrame:
    """Return each trend's months grouped, in order, into periods holding at least k of each count of counts
    (count, its denominator) and of each complement (and at most about an eighth of the trend's series), with
    Wilson intervals, suppressed and rounded as every rate is. Periods are disjoint and cover every month, so
    the union of any hidden ones is the total minus the shown ones, which suppress_cells keeps safe."""
    if months.is_empty():
        return months
    grouped = []
    for _, trend in months.sort([*TREND_KEY, "label"]).group_by(TREND_KEY, maintain_order=True):
        rows = trend.to_dicts()
        target = max(2 * k, trend["evaluable_count"].sum() // 8)
        for block in months_in_periods(rows, k, target, counts):
            first, last = block[0], block[-1]
            grouped.append(
                {
                    **{c: first[c] for c in (*TREND_KEY, "dimension", "parent")},
                    "dimension_value": first["dimension_value"],
                    "label": first["label"] if first is last else f"{first['label']} to {last['label']}",
                    "period": BALANCED,
                    **{c: sum(r[c] for r in block) for pair in TREND_COUNTS.values() for c in pair},
                }
            )
    frame = pl.DataFrame(grouped)
    for rate, (count, denominator) in TREND_COUNTS.items():
        low, high = wilson_bounds(pl.col(count), pl.col(denominator))
        _, low_name, high_name = rate_of(rate.removesuffix("_rate"))
        frame = frame.with_columns(
            pl.when(pl.col(denominator) > 0).then(pl.col(count) / pl.col(denominator)).alias(rate),
            low.alias(low_name),
            high.alias(high_name),
        )
    suppressed = suppress_levels(frame, TREND_LEVELS, [RATE_TABLE], k)
    return rounded(suppressed, RATE_COLUMNS)
