"""Statistical disclosure control for published reports (shared spec §7).

Any count from 1 to min_cell_size - 1 is suppressed together with every rate
and interval derived from it. A count whose complement is small (12 evaluable,
11 responders: 1 non-responder) is suppressed too. Where one cell of a
partition is suppressed and the partition's total is published, the smallest
other cell is suppressed as well (secondary suppression), so that no hidden
count is a published total minus the cells shown.
"""

from __future__ import annotations

import polars as pl

from pipelines.stats.dimensions import CLINIC_SPLITS, NETWORK_VALUE, SPLIT_SEPARATOR

SUPPRESSED_NOTE = (
    "Counts from 1 to {limit} are not shown, nor any rate or interval computed from them, to protect patients' "
    "privacy; where one such cell could be worked out from a total, a second cell is hidden as well."
)


def is_small(count: pl.Expr, min_cell_size: int) -> pl.Expr:
    """Return whether a count would reveal between 1 and min_cell_size - 1 patients."""
    return (count >= 1) & (count < min_cell_size)


def parent_of(dimension: pl.Expr, value: pl.Expr) -> pl.Expr:
    """Return the cohort whose total the cell adds up to: the clinic for clinic splits, else the network."""
    split_of_clinic = dimension.is_in(list(CLINIC_SPLITS.values()))
    return pl.when(split_of_clinic).then(value.str.split(SPLIT_SEPARATOR).list.first()).otherwise(pl.lit(NETWORK_VALUE))


def suppress(
    frame: pl.DataFrame,
    measures: dict[str, list[str]],
    total: str,
    partition: list[str],
    min_cell_size: int,
    derived_from_total: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Return frame with small counts and what derives from them set to null.

    measures: count column -> columns derived from it (rates, intervals).
    total: the denominator column; when it is small the whole row is suppressed.
    partition: columns whose groups add up to a published total (for secondary suppression).
    derived_from_total: other columns computed over the total's rows (a mean), hidden with it.
    """
    if frame.is_empty():
        return frame
    small_total = is_small(pl.col(total), min_cell_size)
    hidden = {
        count: small_total
        | is_small(pl.col(count), min_cell_size)
        | is_small(pl.col(total) - pl.col(count), min_cell_size)
        for count in measures
    }
    flagged = frame.with_columns(
        [condition.fill_null(False).alias(f"_hide_{count}") for count, condition in hidden.items()]
    ).with_row_index("_row")
    rows_to_hide: dict[str, set[int]] = {count: set() for count in measures}
    for count in measures:
        flag = f"_hide_{count}"
        rows_to_hide[count] |= set(flagged.filter(pl.col(flag))["_row"].to_list())
        # Secondary: a partition with exactly one hidden cell hides its smallest visible cell too.
        lonely = flagged.group_by(partition).agg(pl.col(flag).sum().alias("hidden")).filter(pl.col("hidden") == 1)
        candidates = flagged.join(lonely.select(partition), on=partition).filter(~pl.col(flag))
        if not candidates.is_empty():
            smallest = candidates.sort(count).group_by(partition, maintain_order=True).first()
            rows_to_hide[count] |= set(smallest["_row"].to_list())
    result = flagged
    for count, derived in measures.items():
        rows = pl.col("_row").is_in(sorted(rows_to_hide[count]))
        result = result.with_columns(
            [pl.when(rows).then(None).otherwise(pl.col(column)).alias(column) for column in [count, *derived]]
        )
    result = result.with_columns(
        [pl.when(small_total).then(None).otherwise(pl.col(c)).alias(c) for c in (total, *derived_from_total)]
    )
    return result.drop("_row", *[f"_hide_{count}" for count in measures])


def publishable_response_rates(rates: pl.DataFrame, min_cell_size: int) -> pl.DataFrame:
    """Return marts.response_rates as it may be published."""
    with_parent = rates.with_columns(parent=parent_of(pl.col("dimension"), pl.col("dimension_value")))
    return suppress(
        with_parent,
        measures={
            "responder_count": ["response_rate", "response_ci_low", "response_ci_high"],
            "remitter_count": ["remission_rate", "remission_ci_low", "remission_ci_high"],
            "rapid_response_count": [],
            "completed_induction_count": [],
        },
        total="evaluable_count",
        partition=["dimension", "parent", "instrument", "series_kind"],
        min_cell_size=min_cell_size,
    )


def publishable_counts(
    frame: pl.DataFrame, count: str, partition: list[str], min_cell_size: int, derived: list[str] | None = None
) -> pl.DataFrame:
    """Return frame with one count column (and what derives from it) suppressed where small."""
    if frame.is_empty():
        return frame
    return suppress(
        frame.with_columns(pl.col(count).alias("_total")),
        measures={count: derived or []},
        total="_total",
        partition=partition,
        min_cell_size=min_cell_size,
    ).drop("_total")
