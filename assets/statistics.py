"""Cohort statistics marts (shared spec §5): rates with Wilson intervals, Kaplan-Meier relief, trajectories."""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.checks import check_specs
from assets.tables import polars_table_specs, write_tables
from pipelines.database import column_names, key_of, rows_with_keys, table_exists
from pipelines.dictionary import write_comments
from pipelines.incremental.scope import replaced_rows_table, scope_is_every_patient, scoped_rows
from pipelines.resources import Warehouse
from pipelines.stats.case_mix import CASE_MIX_CELL, case_mix_cells, case_mix_comparison_from_cells
from pipelines.stats.cells import updated_cells
from pipelines.stats.cohorts import (
    CELL,
    END_CHANGE_CELL,
    RATE_KEY,
    RELIEF_CELL,
    TRAJECTORY_CELLS_SQL,
    cohorts_of_cells,
    end_change_cells,
    end_change_quantiles_from_cells,
    relief_cells,
    relief_summary_from_survival,
    relief_survival_brought_up_to_date,
    relief_survival_from_cells,
    response_rate_cells,
    response_rates_from_cells,
    trajectories_from_cells,
)
from pipelines.stats.dimensions import START_MONTH

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

# The additive cells the marts are computed from, kept in the warehouse between refreshes: an incremental
# refresh adds the cells of the series it recomputed and takes away those of the series they replaced, so
# that millions of series are not read and counted again for a few thousand patients.
# name: (description, key columns, cells of series outcomes)
CELL_TABLES = {
    "response_rate_cells": (
        (
            "The counts response_rates adds up into cohorts, per finest cell (clinic, indication, month of series "
            "start, provider, dose band, instrument, series kind) of evaluable series."
        ),
        CELL,
        response_rate_cells,
    ),
    "relief_cells": (
        (
            "The relapses (events) and censorings per finest cell and day of relief that relief_survival adds up into "
            "cohorts."
        ),
        RELIEF_CELL,
        relief_cells,
    ),
    "end_change_cells": (
        (
            "Evaluable series per clinic, indication, instrument, series kind and end-of-series % change: the values "
            "end_change_quantiles reads its quantiles from."
        ),
        END_CHANGE_CELL,
        end_change_cells,
    ),
    "case_mix_cells": (
        (
            "Evaluable series and responders per clinic, instrument, series kind, indication and baseline score, that "
            "case_mix_comparison bands and compares."
        ),
        CASE_MIX_CELL,
        case_mix_cells,
    ),
}
CELL_DESCRIPTIONS = {name: description for name, (description, _, _) in CELL_TABLES.items()}
CELLS_SCHEMA = "intermediate"
# The rows of marts.series_outcomes the kept cells were counted from, as a count and a sum of row hashes (a
# sum adds up over rows like the cells do): cells are brought up to date only from the state they were counted
# from, whatever ran in between (a run stopped after the merge, assets materialized one by one).
CELLS_SOURCE = "statistics_cells_source"
CELLS_SOURCE_TABLE = f"{CELLS_SCHEMA}.{CELLS_SOURCE}"
CELLS_SOURCE_DESCRIPTION = (
    "The rows of marts.series_outcomes the statistics cells were counted from: how many, and the sum of their "
    "hashes; and the sum of the hashes of marts.relief_survival's counts as written with them. An incremental "
    "refresh updates the cells only when the rows match, and the relief curves from their kept counts only when "
    "those match too."
)
SERIES_OUTCOMES = "marts.series_outcomes"
RELIEF_SURVIVAL = "marts.relief_survival"
# The columns of marts.relief_survival that an incremental refresh adds the changed cells' counts to.
RELIEF_COUNT_COLUMNS = (*RATE_KEY, "day", "events", "censored")


def series_outcomes_sql(source: str, where: str = "") -> str:
    """Return the SELECT of the columns and rows the statistics read from series outcome rows (with the
    instrument's caseness and range)."""
    return (
        f"select {', '.join(f'outcomes.{c}' for c in SERIES_OUTCOME_COLUMNS)}, "
        "instruments.caseness_min, instruments.score_min, instruments.score_max "
        f"from {source} as outcomes left join seeds.instruments as instruments using (instrument) {where}"
    )


def row_hashes(condition: str = "true") -> str:
    """Return the SQL of (rows, sum of their hashes) over the statistics' columns of the rows meeting a condition."""
    columns = ", ".join(SERIES_OUTCOME_COLUMNS)
    return f"count(*) filter (where {condition}), coalesce(sum(hash({columns})) filter (where {condition}), 0)"


def counted_from(con) -> tuple[int, int]:
    """Return the rows of marts.series_outcomes and the sum of their hashes, as the cells were counted from them."""
    return con.execute(f"select series_count, row_hash_sum from {CELLS_SOURCE_TABLE}").fetchall()[0]


def relief_counts_hash(con) -> int | None:
    """Return the sum of the hashes of marts.relief_survival's counts (RELIEF_COUNT_COLUMNS); None without it."""
    if not table_exists(con, RELIEF_SURVIVAL):
        return None
    columns = ", ".join(RELIEF_COUNT_COLUMNS)
    return con.execute(f"select coalesce(sum(hash({columns})), 0) from {RELIEF_SURVIVAL}").fetchall()[0][0]


def kept_relief_counts(con, cohorts: pl.DataFrame) -> pl.LazyFrame | None:
    """Return the counts per day (RELIEF_COUNT_KEY) of some cohorts (RATE_KEY) as marts.relief_survival keeps
    them; None when that table is not the one written with the kept cells (its hash is not the one recorded)."""
    if "relief_survival_hash" not in column_names(con, CELLS_SOURCE_TABLE):  # recorded by an older version
        return None
    recorded = con.execute(f"select relief_survival_hash from {CELLS_SOURCE_TABLE}").fetchall()[0][0]
    if recorded is None or recorded != relief_counts_hash(con):
        return None
    # Unqualified: a semi join brings none of the keys' columns into the select list.
    counts = f"{', '.join(RATE_KEY)}, day as duration, events, censored"
    return rows_with_keys(con, RELIEF_SURVIVAL, cohorts.select(RATE_KEY), counts).lazy()


def cells_counted_anew(con) -> tuple[dict[str, pl.DataFrame], tuple[int, int]]:
    """Return every cell counted from every series, and the rows they were counted from (counted_from)."""
    # Only the columns and rows the statistics use: the marts hold millions of rows.
    series_outcomes = con.sql(series_outcomes_sql(SERIES_OUTCOMES)).pl().lazy()
    cells = {name: cells_of(series_outcomes).collect() for name, (_, _, cells_of) in CELL_TABLES.items()}
    return cells, con.execute(f"select {row_hashes()} from {SERIES_OUTCOMES}").fetchall()[0]


def cells_brought_up_to_date(
    con,
) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], pl.LazyFrame, tuple[int, int]] | None:
    """Return the kept cells with the recomputed series' counts added and the replaced series' taken away, the
    change of the cells that changed (updated_cells), the cohorts of relief_survival whose cells changed, and the
    rows now counted (counted_from); None when the kept cells were not counted from the rows the merge replaced
    (then every cell is counted anew)."""
    replaced = replaced_rows_table(SERIES_OUTCOMES)
    needed = [replaced, CELLS_SOURCE_TABLE, *(f"{CELLS_SCHEMA}.{name}" for name in CELL_TABLES)]
    if not all(table_exists(con, table) for table in needed):
        return None
    recomputed = scoped_rows(con, SERIES_OUTCOMES)
    rows_now, hashes_now = con.execute(f"select {row_hashes()} from {SERIES_OUTCOMES}").fetchall()[0]
    rows_recomputed, hashes_recomputed = con.execute(f"select {row_hashes()} from {recomputed}").fetchall()[0]
    rows_replaced, hashes_replaced = con.execute(f"select {row_hashes()} from {replaced}").fetchall()[0]
    before = (rows_now - rows_recomputed + rows_replaced, hashes_now - hashes_recomputed + hashes_replaced)
    if counted_from(con) != before:
        return None
    added = con.sql(series_outcomes_sql(recomputed)).pl().lazy()
    removed = con.sql(series_outcomes_sql(replaced)).pl().lazy()
    cells, changes = {}, {}
    for name, (_, keys, cells_of) in CELL_TABLES.items():
        kept = con.sql(f"select * from {CELLS_SCHEMA}.{name}").pl()
        cells[name], changes[name] = updated_cells(kept, cells_of(added).collect(), cells_of(removed).collect(), keys)
    changed_relief = cohorts_of_cells(changes["relief_cells"].lazy(), periods=(START_MONTH,), breakdowns=True)
    return cells, changes, changed_relief, (rows_now, hashes_now)


def relief_survival_of(
    con, relief_cells: pl.DataFrame, change: pl.DataFrame | None, cohorts: pl.DataFrame | None
) -> tuple[pl.DataFrame, str]:
    """Return the relief curves, and how they were made: of every cohort from every cell in a full refresh; in
    an incremental one, of the cohorts whose cells changed, from their kept counts and the change when the kept
    curves are those written with the cells, else from every cell."""
    if change is None:
        return relief_survival_from_cells(relief_cells.lazy()).collect(), "relief curves from every cell"
    kept = kept_relief_counts(con, cohorts)
    if kept is None:
        curves = relief_survival_from_cells(relief_cells.lazy(), only=cohorts.lazy()).collect()
        return curves, f"relief curves of {cohorts.height} cohorts from every cell"
    curves = relief_survival_brought_up_to_date(kept, change.lazy()).collect()
    return curves, f"relief curves of {cohorts.height} cohorts from their kept counts"


def write_counted_from(con, rows: int, hashes: int, cells: str) -> dg.MaterializeResult:
    """Write CELLS_SOURCE_TABLE, after marts.relief_survival; cells says how the cells were made (metadata shown
    in the UI)."""
    con.execute(
        f"create or replace table {CELLS_SOURCE_TABLE} "
        "(series_count bigint, row_hash_sum hugeint, relief_survival_hash hugeint)"
    )
    relief_hash = relief_counts_hash(con)
    con.execute(
        f"insert into {CELLS_SOURCE_TABLE} values (?, ?::hugeint, ?::hugeint)",
        [rows, str(hashes), None if relief_hash is None else str(relief_hash)],
    )
    write_comments(con, CELLS_SOURCE_TABLE, CELLS_SOURCE_DESCRIPTION)
    return dg.MaterializeResult(asset_key=key_of(CELLS_SOURCE_TABLE), metadata={"row_count": 1, "cells": cells})


@dg.multi_asset(
    specs=polars_table_specs(
        "marts",
        DESCRIPTIONS,
        [key_of("marts.series_outcomes"), key_of("marts.assessment_outcomes"), key_of("seeds.instruments")],
    )
    + polars_table_specs(
        CELLS_SCHEMA,
        {**CELL_DESCRIPTIONS, CELLS_SOURCE: CELLS_SOURCE_DESCRIPTION},
        [key_of("marts.series_outcomes"), key_of("seeds.instruments")],
    ),
    check_specs=[
        spec for name, key_columns in KEY_COLUMNS.items() for spec in check_specs(f"marts.{name}", key_columns)
    ],
)
def statistics_marts(warehouse: Warehouse):
    """Compute the cohort statistics from their additive cells: counted from every series in a full refresh,
    brought up to date from the replaced and recomputed series in an incremental one."""
    with warehouse.connect() as con:
        up_to_date = None if scope_is_every_patient(con) else cells_brought_up_to_date(con)
        if up_to_date is None:
            cells, counted = cells_counted_anew(con)
            changes = changed_cells = changed_relief = None
        else:
            cells, changes, changed_relief, counted = up_to_date
            changed_cells = {name: changes[name].select(keys) for name, (_, keys, _) in CELL_TABLES.items()}
            changed_relief = changed_relief.collect()
        trajectory_cells = con.sql(TRAJECTORY_CELLS_SQL).pl().lazy()
        # In an incremental refresh only the relief cohorts whose cells changed are worked out and replaced: the
        # curves of every cohort, one row per day, are the largest of these marts.
        survival, relief_how = relief_survival_of(
            con, cells["relief_cells"], None if changes is None else changes["relief_cells"], changed_relief
        )
        tables: dict[str, pl.DataFrame] = {
            "response_rates": response_rates_from_cells(cells["response_rate_cells"].lazy()).collect(),
            "relief_survival": survival,
            "relief_summary": relief_summary_from_survival(survival.lazy()).collect(),
            "end_change_quantiles": end_change_quantiles_from_cells(cells["end_change_cells"].lazy()).collect(),
            "case_mix_comparison": case_mix_comparison_from_cells(cells["case_mix_cells"].lazy()).collect(),
            "trajectories": trajectories_from_cells(trajectory_cells).collect(),
        }
        del survival
        replacing = None
        if changed_relief is not None:
            replacing = {"relief_survival": changed_relief, "relief_summary": changed_relief}
        yield from write_tables(con, "marts", tables, DESCRIPTIONS, keys=KEY_COLUMNS, replacing=replacing)
        if changed_cells is not None:  # only the cells that changed are written
            for name, (_, keys, _) in CELL_TABLES.items():
                cells[name] = cells[name].join(changed_cells[name], on=keys, how="semi", nulls_equal=True)
        yield from write_tables(con, CELLS_SCHEMA, cells, CELL_DESCRIPTIONS, replacing=changed_cells)
        if changed_cells is None:
            how = "counted from every series"
        else:
            how = f"brought up to date: {sum(keys.height for keys in changed_cells.values())} cells changed"
        yield write_counted_from(con, *counted, f"{how}; {relief_how}")
        con.execute(f"drop table if exists {replaced_rows_table(SERIES_OUTCOMES)}")
