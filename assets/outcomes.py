"""The outcome engine's tables: series, baselines, follow-ups and per-series outcomes (Polars)."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pyarrow as pa

from assets.checks import check_specs
from assets.tables import REFRESH_SCOPE, polars_table_specs, write_tables
from pipelines.database import key_of
from pipelines.incremental.scope import scope_is_every_patient, scoped_rows
from pipelines.outcomes import outcome_frames_by_shard
from pipelines.resources import RulesResource, Warehouse, rules_from

# table: (description shown in the UI and the warehouse, key columns of its grain check)
OUTCOME_TABLES = {
    "infusion_sessions": (
        "One row per accepted infusion with its series_number and infusion_number in the series.",
        ("patient_id", "infused_at"),
    ),
    "treatment_series": (
        "One row per treatment series (patient_id, series_number): kind, bounds, size (spec §3).",
        ("patient_id", "series_number"),
    ),
    "series_baselines": (
        "One row per (series, outcome instrument the patient has): its baseline, if any (spec §4).",
        ("patient_id", "series_number", "instrument"),
    ),
    "assessment_outcomes": (
        "One row per follow-up assessment of an outcome instrument, judged against its baseline.",
        ("patient_id", "series_number", "instrument", "administered_at"),
    ),
    "series_outcomes": (
        "One row per (series, instrument): status, response, remission, relief (spec §4).",
        ("patient_id", "series_number", "instrument"),
    ),
}
DESCRIPTIONS = {name: description for name, (description, _) in OUTCOME_TABLES.items()}
KEY_COLUMNS = {name: key_columns for name, (_, key_columns) in OUTCOME_TABLES.items()}


READ_BATCH_ROWS = 1_000_000
ENGINE_DUCKDB_MEMORY = "512MB"


@dg.multi_asset(
    specs=polars_table_specs(
        "intermediate",
        DESCRIPTIONS,
        [key_of("staging.infusions"), key_of("staging.assessments"), key_of("seeds.instruments"), REFRESH_SCOPE],
    ),
    check_specs=[
        spec for name, key_columns in KEY_COLUMNS.items() for spec in check_specs(f"intermediate.{name}", key_columns)
    ],
)
def outcome_tables(warehouse: Warehouse, rules: RulesResource):
    """Compute the outcome tables in one pass so that staging is read once.

    Every table is per patient: an incremental refresh computes the recomputed patients' rows and merges them.
    """
    outcome_rules = rules_from(rules)
    with warehouse.connect() as con:
        merge = not scope_is_every_patient(con)

        def rows_of(table: str) -> str:
            return scoped_rows(con, table) if merge else table

        # DuckDB keeps blocks of the tables it wrote cached up to its cap; while the Polars engine holds every
        # patient's rows (the refresh's peak memory) it gets a smaller share and gives the cache back.
        con.execute(f"set memory_limit = '{ENGINE_DUCKDB_MEMORY}'")
        # Patient and instrument codes become Polars enums while the engine runs: sorting, joining and grouping
        # on their integer codes is several times faster than on text. The text comes back before writing.
        patient_ids = con.sql(f"select patient_id from {rows_of('staging.patients')} order by 1").pl()["patient_id"]
        patient_codes = pl.Enum(patient_ids)
        instruments = con.sql("select * from seeds.instruments").pl()
        instrument_codes = pl.Enum(sorted(instruments["instrument"]))
        # Each cast built once: building one converts the enum's categories (a million patients) again.
        encoded = {
            "patient_id": pl.col("patient_id").cast(patient_codes),
            "instrument": pl.col("instrument").cast(instrument_codes),
        }

        def encode(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.with_columns(cast for column, cast in encoded.items() if column in frame.columns)

        def read_encoded(sql: str) -> pl.LazyFrame:
            # In batches, each encoded as it arrives: the text of millions of ids is never held all at once.
            reader = con.sql(sql).to_arrow_reader(READ_BATCH_ROWS)
            frames = [encode(pl.from_arrow(batch)) for batch in reader]
            if not frames:  # no rows (an incremental refresh with no patient in scope)
                # From no batches: the schema's own empty_table() imports pandas, a quarter of a second.
                frames = [encode(pl.from_arrow(pa.Table.from_batches([], schema=reader.schema)))]
            return pl.concat(frames, rechunk=True).lazy()

        def decode(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.with_columns(pl.col(c).cast(pl.String) for c in encoded if c in frame.columns)

        infusions = read_encoded(f"select patient_id, infused_at from {rows_of('staging.infusions')}")
        assessments = read_encoded(
            f"select patient_id, instrument, administered_at, score from {rows_of('staging.assessments')}"
        )
        tables = outcome_frames_by_shard(
            infusions, assessments, encode(instruments).lazy(), outcome_rules, patients=len(patient_ids)
        )
        # The dict holds the only references from here, and write_tables lets go of each frame once written:
        # smallest first, so that the largest is decoded and written once the others are gone. In the engine's
        # order the follow-ups' text was made while the frames freed just before were still held by the
        # allocator, 0.25 GB above the step's peak otherwise.
        tables = dict(sorted(tables.items(), key=lambda named: named[1].estimated_size()))
        yield from write_tables(
            con, "intermediate", tables, DESCRIPTIONS, merge=merge, keys=KEY_COLUMNS, prepare=decode
        )
        con.execute(
            f"set memory_limit = '{warehouse.memory_limit}'" if warehouse.memory_limit else "reset memory_limit"
        )
