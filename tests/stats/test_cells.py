"""Kept cells brought up to date: the recomputed series' counts added, the replaced series' taken away."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

import pipelines.stats.cells as cells_module
from pipelines.stats.cells import updated_cells

KEYS = ["clinic_id", "provider_id"]


def cells(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "clinic_id": pl.String,
            "provider_id": pl.String,
            "series_count": pl.Int64,
            "responder_count": pl.Int64,
        },
        orient="row",
    )


def test_counts_are_added_and_taken_away_per_cell_and_emptied_cells_go():
    # waco's cell is not touched: passed on as it is, its null provider a key like any other.
    kept = cells([("austin", "dr-a", 5, 2), ("austin", None, 3, 1), ("frisco", "dr-b", 1, 1), ("waco", None, 2, 0)])
    # Patient P moved from frisco (dr-b, a responder) to austin without a provider, and did not respond there;
    # a new patient responded at austin with dr-a.
    added = cells([("austin", None, 1, 0), ("austin", "dr-a", 1, 1)])
    removed = cells([("frisco", "dr-b", 1, 1)])

    updated, changed = updated_cells(kept, added, removed, KEYS)

    assert_frame_equal(
        updated.sort(KEYS, nulls_last=True),
        cells([("austin", "dr-a", 6, 3), ("austin", None, 4, 1), ("waco", None, 2, 0)]),
    )
    # frisco's only cell is empty now: gone, as a count from nothing would not have it; and it changed, by what
    # was taken away.
    assert_frame_equal(
        changed.sort(KEYS, nulls_last=True),
        cells([("austin", "dr-a", 1, 1), ("austin", None, 1, 0), ("frisco", "dr-b", -1, -1)]),
    )


def test_a_series_recomputed_to_the_same_counts_changes_no_cell():
    kept = cells([("austin", "dr-a", 5, 2)])
    same = cells([("austin", "dr-a", 1, 1)])

    updated, changed = updated_cells(kept, same, same, KEYS)

    assert_frame_equal(updated, kept)
    assert changed.height == 0


def test_a_kept_cell_whose_key_hash_equals_a_changed_keys_is_summed_again_to_the_same_counts(monkeypatch):
    # Every key hashes alike: each kept cell is taken for a changed one.
    monkeypatch.setattr(cells_module, "key_hashes", lambda frame, keys: pl.Series([0] * frame.height, dtype=pl.UInt64))
    kept = cells([("austin", "dr-a", 5, 2), ("waco", None, 2, 0)])
    added = cells([("austin", "dr-a", 1, 1)])

    updated, changed = updated_cells(kept, added, cells([]), KEYS)

    assert_frame_equal(updated.sort(KEYS, nulls_last=True), cells([("austin", "dr-a", 6, 3), ("waco", None, 2, 0)]))
    assert changed.rows() == [("austin", "dr-a", 1, 1)]
