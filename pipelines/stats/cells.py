"""Additive cells kept between refreshes: each statistic is a sum of cells, so cells can be brought up to date
by adding the cells of the series a refresh recomputed and taking away those of the series they replaced."""

from __future__ import annotations

import polars as pl


def counts_of(cells: pl.LazyFrame | pl.DataFrame, keys: list[str]) -> list[str]:
    """Return the count columns of cells: every column but the keys."""
    return [column for column in cells.collect_schema().names() if column not in keys]


def updated_cells(
    kept: pl.DataFrame, added: pl.DataFrame, removed: pl.DataFrame, keys: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (cells, change): kept plus added minus removed, summed per key, without the cells whose counts
    all come to 0 (as though the series were counted anew); and the change itself, added minus removed per key,
    one row per cell whose counts changed (what the kept statistics summed from the cells need added, too).

    kept, added and removed hold the keys (a null key part is a key like any other) and the same count columns.
    """
    counts = counts_of(kept, keys)
    nonzero = pl.any_horizontal(pl.col(column) != 0 for column in counts)

    def summed(frames: list[pl.DataFrame]) -> pl.DataFrame:
        return pl.concat(frames).group_by(keys).agg(pl.col(counts).sum()).filter(nonzero)

    change = summed([added, removed.with_columns(-pl.col(column) for column in counts)])
    change = change.select(kept.columns).cast(kept.schema)
    # Only the kept cells that changed are summed again; the others are passed on as they are. They are told
    # apart by a hash of their key: a kept cell whose hash equals a changed key's without its key being one is
    # summed again too, to the same counts, so a collision costs nothing but time (a million patients' relief
    # cells: 0.05 s against 0.15 s for a join on the key columns, 0.35 to 0.4 s to group every kept cell).
    is_touched = key_hashes(kept, keys).is_in(key_hashes(change, keys).implode())
    touched, untouched = kept.filter(is_touched), kept.filter(~is_touched)
    return pl.concat([untouched, summed([touched, change])]), change


def key_hashes(cells: pl.DataFrame, keys: list[str]) -> pl.Series:
    """Return a 64-bit hash of each cell's key (equal keys, nulls included, hash alike)."""
    return cells.select(pl.struct(keys).hash()).to_series()
