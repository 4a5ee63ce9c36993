"""Disclosure control (shared spec §10.8): the one layer between the statistics marts and every published page.

No count from 1 to min_cell_size - 1 may be shown or derived from what is
published. Every page reads only what these functions return:

- cells: a count, its complement (evaluable minus responders) or its total in
  1..k-1 hides the cell's measure (primary suppression); within the table a
  published total adds up to (the clinics of the network, the periods of a
  clinic), the hidden cells taken together must hold 0 or at least k of
  every count, or more cells are hidden, smallest first (secondary
  suppression that also defeats the union of two hidden cells);
- steps (the completion funnel): a step is shown only where the drop from the
  previous shown step is 0 or at least k, so no difference of two shown counts
  is small;
- survival curves: shown only at points where at least k are at risk and the
  events since the previous shown point are 0 or at least k;
- precision: rates and interval bounds are rounded to 0.1 percentage point, so
  a printed rate does not pin down k/n;
- grain: trends use the finest period of series start (month, quarter,
  half-year, year) at which the points of both their lines (response and
  remission) mostly survive, instead of a month grain that hides all.

With min_cell_size 1 or 0 (only with disclosure control switched off by name)
nothing is hidden and every page says it is not for publication.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from pipelines.stats.dimensions import CLINIC_SPLITS, NETWORK_VALUE, SPLIT_SEPARATOR, START_PERIODS

RATE_DECIMALS = 3  # 0.1 percentage point
# A trend is drawn at the finest period at which at least this share of periods can be shown.
TREND_SHOWN_SHARE = 2 / 3


# What pages print for a figure this layer hides: "fewer than k" would be untrue of a cell hidden so that a
# total does not give a small one away (suppress_cells), which may hold any number; a dash would read as "none".
WITHHELD = "withheld"


def count_text(value: int | None) -> str:
    """Return a count as the pages print it, a hidden one as WITHHELD."""
    return WITHHELD if value is None else f"{value:,}"


def note(min_cell_size: int) -> str:
    """Return the sentence every page carries about what it hides."""
    if min_cell_size <= 1:
        return "Disclosure control is switched off: NOT FOR PUBLICATION. Every count is shown, however small."
    return (
        f"To protect patients' privacy, no count from 1 to {min_cell_size - 1} is shown or can be worked out from "
        "what is shown: such cells are hidden with their rates, a second cell is hidden where a total would "
        "reveal them, rates are rounded to 0.1 percentage point, curves and funnels show only steps of at least "
        f"{min_cell_size}, and trends use quarters, half-years, years or runs of months where months would be "
        f'too small. A hidden figure reads "{WITHHELD}"; a dash means there was nothing to count.'
    )


def is_small(count: int | None, min_cell_size: int) -> bool:
    """Whether a count would reveal between 1 and min_cell_size - 1 patients."""
    return count is not None and 1 <= count < min_cell_size


def parent_of(dimension: pl.Expr, value: pl.Expr) -> pl.Expr:
    """Return the cohort a cell's table adds up to: the clinic for a clinic's own splits, else the network."""
    split_of_clinic = dimension.is_in(list(CLINIC_SPLITS.values()))
    return pl.when(split_of_clinic).then(value.str.split(SPLIT_SEPARATOR).list.first()).otherwise(pl.lit(NETWORK_VALUE))


def with_parent(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(parent=parent_of(pl.col("dimension"), pl.col("dimension_value")))


def suppress_cells(
    frame: pl.DataFrame,
    tables: list[list[str]],
    total: str,
    measures: dict[str, list[str]],
    min_cell_size: int,
    derived_from_total: Iterable[str] = (),
) -> pl.DataFrame:
    """Return frame with the cells that could reveal a small count set to null.

    tables: groupings of the cells, each group one table that adds up to a published total (the clinics of
        the network; a clinic's periods; the clinics' cells of one period). A cell may lie in several; cells
        are hidden until every group of every grouping is safe. A grouping column that is null for a cell
        leaves it out of that grouping.
    total: each cell's denominator (evaluable series, infusions); hidden with all the cell shows when small.
    measures: count column -> the columns derived from it (rates, intervals), hidden with it.
    derived_from_total: columns computed over the total's rows (a mean), hidden with the total.
    """
    if frame.is_empty() or min_cell_size <= 1:
        return frame
    k = min_cell_size
    # Plain lists of the columns the judgement reads, indexed by cell: a dict per row took most of the time.
    totals = [value or 0 for value in frame[total].to_list()]
    counts = {count: [value or 0 for value in frame[count].to_list()] for count in measures}

    def small(column: pl.Expr) -> pl.Expr:
        return column.is_between(1, k - 1)

    def cells_where(condition: pl.Expr) -> set[int]:
        return set(frame.select(pl.arg_where(condition.fill_null(False)))[:, 0].to_list())

    hide_total = cells_where(small(pl.col(total)))
    hide = {
        count: hide_total
        | cells_where(
            pl.col(count).is_not_null() & (small(pl.col(count)) | small(pl.col(total).fill_null(0) - pl.col(count)))
        )
        for count in measures
    }
    # Each group of each grouping: its cells in row order, groups in order of first appearance.
    groups: list[list[int]] = []
    for table in tables:
        grouped = (
            frame.select(table)
            .with_row_index("_cell")
            .filter(pl.all_horizontal(pl.col(table).is_not_null()))
            .group_by(table, maintain_order=True)
            .agg("_cell")
        )
        groups.extend(grouped["_cell"].to_list())

    def total_union(chosen: list[int]) -> list[int]:
        return [sum(totals[cell] for cell in chosen)]

    def measure_union(count: str):
        def union(chosen: list[int]) -> list[int]:
            found = sum(counts[count][cell] for cell in chosen)
            return [found, sum(totals[cell] for cell in chosen) - found]

        return union

    # Only a table with a hidden cell can need another hidden: the others are passed over by their cells' ids.
    group_ids = [set(cells) for cells in groups]
    changed = True
    while changed:  # hiding a cell for one table can unbalance another it lies in
        changed = False
        for cells, ids in zip(groups, group_ids, strict=True):
            if ids & hide_total and grow_until_safe(cells, hide_total, total_union, totals, k):
                changed = True
                for count in measures:  # a hidden total hides every count of its cell
                    hide[count] |= hide_total
            for count in measures:
                if ids & hide[count]:
                    changed |= grow_until_safe(cells, hide[count], measure_union(count), counts[count], k)
    result = frame.with_row_index("_cell")
    for count, derived in measures.items():
        hidden_rows = pl.col("_cell").is_in(sorted(hide[count]))
        result = result.with_columns(
            [pl.when(hidden_rows).then(None).otherwise(pl.col(c)).alias(c) for c in (count, *derived)]
        )
    hidden_rows = pl.col("_cell").is_in(sorted(hide_total))
    result = result.with_columns(
        [pl.when(hidden_rows).then(None).otherwise(pl.col(c)).alias(c) for c in (total, *derived_from_total)]
    )
    return result.drop("_cell")


def grow_until_safe(cells: list[int], hidden: set[int], sums, order_by: list[int], k: int) -> bool:
    """Hide more cells of a table, smallest first, until the hidden ones together reveal no small count.

    cells are a table's cell numbers; sums(chosen cells) returns the counts an
    outsider gets by subtracting the shown cells from the table's total: each
    must be 0 or at least k. order_by holds each cell's size. Returns whether a
    cell was added.
    """
    added = False
    while True:
        chosen = [cell for cell in cells if cell in hidden]
        if not chosen or not any(is_small(value, k) for value in sums(chosen)):
            return added
        visible = [cell for cell in cells if cell not in hidden]
        if not visible:
            return added  # everything is hidden: nothing can be subtracted
        hidden.add(min(visible, key=order_by.__getitem__))  # the first of the smallest, as a stable sort
        added = True


def rounded(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Return frame with rates and interval bounds rounded to 0.1 percentage point."""
    present = [c for c in columns if c in frame.columns]
    return frame.with_columns([pl.col(c).round(RATE_DECIMALS) for c in present])


def safe_steps(frame: pl.DataFrame, key: list[str], step: str, count: str, min_cell_size: int) -> pl.DataFrame:
    """Return the steps of each key's decreasing counts (a funnel) that may be shown together.

    A step is kept when its count is 0 or at least k and it fell from the
    previous kept step by 0 or at least k; the others are dropped, so that no
    difference of two shown counts is small.
    """
    if frame.is_empty() or min_cell_size <= 1:
        return frame
    ordered = frame.sort([*key, step])
    keep, current, previous = [], None, None
    for group, value in zip(key_runs(ordered, key), ordered[count].to_list(), strict=True):
        if group != current:
            current, previous = group, None
        shown = not (value is None or is_small(value, min_cell_size))
        shown = shown and not (previous is not None and is_small(previous - value, min_cell_size))
        keep.append(shown)
        previous = value if shown else previous
    return ordered.filter(pl.Series(keep, dtype=pl.Boolean))


def key_runs(ordered: pl.DataFrame, key: list[str]) -> list[int]:
    """Return, for a frame sorted by key, each row's run of equal keys as a number.

    The scans below walk plain lists of a few columns: a dict per row (iter_rows(named=True)) took most of
    their time, a second at 100,000 patients.
    """
    return ordered.select(pl.struct(key).rle_id()).to_series().to_list()


def safe_survival_points(curves: pl.DataFrame, key: list[str], min_cell_size: int) -> pl.DataFrame:
    """Return the points of Kaplan-Meier curves that may be published (spec §10.8).

    A point is kept where at least k are at risk and the events since the
    previous kept point are 0 or at least k; the counts themselves are not
    published, and survival and its band are rounded.
    """
    columns = [*key, "day", "survival", "ci_low", "ci_high"]
    if curves.is_empty():
        return curves.select(columns)
    if min_cell_size <= 1:
        return curves.select(columns)
    ordered = curves.sort([*key, "day"])
    k, keep, current, stopped, events_since = min_cell_size, [], None, False, 0
    keep_point = keep.append  # the loop runs over every day of every curve: a million points at a million patients
    for group, events, at_risk in zip(
        key_runs(ordered, key), ordered["events"].to_list(), ordered["at_risk"].to_list(), strict=True
    ):
        if group != current:
            current, stopped, events_since = group, False, 0
        if stopped or at_risk < k:  # fewer are followed from here on
            stopped = True
            keep_point(False)
            continue
        events_since += events
        if 0 < events_since < k:  # is_small, inlined
            keep_point(False)
        else:
            keep_point(True)
            events_since = 0
    return rounded(ordered.filter(pl.Series(keep, dtype=pl.Boolean)).select(columns), ["survival", "ci_low", "ci_high"])


def finest_trend_grain(rates: pl.DataFrame, cohort_key: list[str], shown: list[str]) -> pl.DataFrame:
    """Return, of rows over every period of series start, those of the finest period each trend can show.

    rates: rows whose "period" column names START_PERIODS, already suppressed; cohort_key: what one trend is
    (cohort, instrument, series kind); shown: the rates the trend draws. The finest period at which each of them
    is shown for at least TREND_SHOWN_SHARE of the periods with series is kept; else the coarsest.
    """
    if rates.is_empty():
        return rates
    share = (
        rates.group_by([*cohort_key, "period"])
        .agg(
            pl.min_horizontal(pl.col(column).is_not_null().sum() for column in shown)
            .truediv(pl.len())
            .alias("shown_share")
        )
        .with_columns(rank=pl.col("period").replace_strict({p: i for i, p in enumerate(START_PERIODS)}))
    )
    chosen = (
        share.filter((pl.col("shown_share") >= TREND_SHOWN_SHARE) | (pl.col("rank") == len(START_PERIODS) - 1))
        .sort("rank")
        .group_by(cohort_key, maintain_order=True)
        .first()
        .select(*cohort_key, "period")
    )
    return rates.join(chosen, on=[*cohort_key, "period"])
