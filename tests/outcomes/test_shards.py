"""The engine run a few patients at a time gives the tables of one pass over every patient."""

from __future__ import annotations

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from assets.outcomes import KEY_COLUMNS
from pipelines.outcomes import OutcomeRules, outcome_frames_by_shard


def test_shards_of_patients_concatenate_to_the_tables_of_one_pass(demo_warehouse):
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        patients = pl.Enum(con.sql("select patient_id from staging.patients order by 1").pl()["patient_id"])
        instruments = con.sql("select * from seeds.instruments").pl()
        codes = pl.Enum(sorted(instruments["instrument"]))
        infusions = con.sql("select patient_id, infused_at from staging.infusions").pl()
        assessments = con.sql("select patient_id, instrument, administered_at, score from staging.assessments").pl()
    encoded = {"patient_id": pl.col("patient_id").cast(patients), "instrument": pl.col("instrument").cast(codes)}

    def encode(frame: pl.DataFrame) -> pl.LazyFrame:
        return frame.with_columns(cast for column, cast in encoded.items() if column in frame.columns).lazy()

    inputs = (encode(infusions), encode(assessments), encode(instruments), OutcomeRules())
    one_pass = outcome_frames_by_shard(*inputs, patients=len(patients.categories), shard_patients=10**9)
    # 2,000 patients in shards of 333: six full shards and a last one of two patients.
    sharded = outcome_frames_by_shard(*inputs, patients=len(patients.categories), shard_patients=333)

    assert one_pass["series_outcomes"].height > 5000
    assert one_pass.keys() == sharded.keys()
    for name, frame in one_pass.items():
        # Sorted by patient, like one pass; within a patient the engine promises no order of instruments.
        assert sharded[name]["patient_id"].to_physical().is_sorted()
        key = list(KEY_COLUMNS[name])
        assert_frame_equal(sharded[name].sort(key), frame.sort(key))
