"""Seed tables and one asset per sql/ file: the file's SELECT becomes schema.table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import polars as pl

from assets.checks import check_results, check_specs, grain_outcome_of_ordered_frame
from pipelines.database import (
    drop_relation,
    key_of,
    one_transaction,
    replace_rows,
    replace_table,
    set_rule_variables,
)
from pipelines.dictionary import write_comments
from pipelines.incremental.file_states import FILE_STATES_TABLE
from pipelines.incremental.scope import merge_by_patient, scope_is_every_patient, scoped_select
from pipelines.resources import RulesResource, Warehouse, rules_from
from pipelines.sql_models import SEED_SCHEMA, SqlModel, functions_sql, seed_files, sql_models

# The patients this refresh recomputes (assets/scope.py); every per-patient table waits for it.
REFRESH_SCOPE = key_of("raw.refresh_scope")


def seed_asset(path: Path) -> dg.AssetsDefinition:
    """Return the asset that loads one seed CSV as seeds.<stem>."""

    description = f"Reference data kept in the repository: sql/seeds/{path.name}."

    @dg.asset(
        key=[SEED_SCHEMA, path.stem],
        group_name=SEED_SCHEMA,
        kinds={"csv", "duckdb"},
        description=description,
        code_version=hashlib.sha256(path.read_bytes()).hexdigest()[:12],
    )
    def load_seed(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            con.execute(
                f"create or replace table {SEED_SCHEMA}.{path.stem} as select * from read_csv(?, header = true)",
                [str(path)],
            )
            write_comments(con, f"{SEED_SCHEMA}.{path.stem}", description)
            row_count = con.execute(f"select count(*) from {SEED_SCHEMA}.{path.stem}").fetchall()[0][0]
        return dg.MaterializeResult(metadata={"row_count": row_count})

    load_seed.__name__ = f"seed_{path.stem}"
    return load_seed


def sql_asset(model: SqlModel) -> dg.AssetsDefinition:
    """Return the asset that materializes one SQL model as a table.

    Its inputs are assets, but for the file states that every source asset keeps as it reads (upstream of
    the raw tables already).
    """

    @dg.asset(
        key=[model.schema, model.name],
        group_name=model.schema,
        deps=[key_of(table) for table in model.inputs if table != FILE_STATES_TABLE]
        + ([REFRESH_SCOPE] if model.is_per_patient else []),
        kinds={"sql", "duckdb"},
        description=model.description,
        metadata={"sql_file": str(model.path.relative_to(model.path.parents[2])), "grain": model.grain},
        check_specs=check_specs(model.table, model.key_columns),
    )
    def build_table(warehouse: Warehouse, rules: RulesResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            set_rule_variables(con, rules_from(rules))
            with one_transaction(con):  # after the seeds exist: range_failure reads seeds.value_ranges
                con.execute(functions_sql())
            metadata = {}
            if model.is_view:
                # Always current: an incremental refresh has nothing to merge.
                drop_relation(con, model.table)  # a table of that name from an earlier version gives way
                con.execute(f"create view {model.table} as {model.select}")
            elif model.is_per_patient and not scope_is_every_patient(con):
                select = scoped_select(con, model.select, model.inputs)
                metadata["rows_recomputed"] = merge_by_patient(con, model.table, select)
            else:
                drop_relation(con, model.table)
                con.execute(f"create table {model.table} as {model.select}")
            write_comments(con, model.table, model.description)
            if not model.is_view:
                # A view's rows are counted only by computing it: 0.5 s for marts.assessment_outcomes at a
                # million patients, in every refresh, for a figure nothing reads but the UI.
                metadata["row_count"] = con.execute(f"select count(*) from {model.table}").fetchall()[0][0]
            checks = check_results(con, model.table, model.key_columns, model.is_per_patient)
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    build_table.__name__ = f"{model.schema}_{model.name}"
    return build_table


seed_assets = [seed_asset(path) for path in seed_files()]
sql_assets = [sql_asset(model) for model in sql_models()]


def polars_table_specs(schema: str, descriptions: dict[str, str], deps: list[dg.AssetKey]) -> list[dg.AssetSpec]:
    """Return the asset specs of tables that one Polars step computes together."""
    return [
        dg.AssetSpec(
            key=[schema, name], group_name=schema, description=description, kinds={"polars", "duckdb"}, deps=deps
        )
        for name, description in descriptions.items()
    ]


def write_tables(
    con,
    schema: str,
    frames: dict,
    descriptions: dict[str, str],
    merge: bool = False,
    keys: dict[str, tuple[str, ...]] | None = None,
    prepare=None,
    replacing: dict[str, pl.DataFrame] | None = None,
):
    """Write each frame as schema.<name> with its comments; yield one MaterializeResult per table.

    With merge, the frames hold the recomputed patients only and replace those patients' rows. A table named
    in replacing gets the rows of its frame in place of its rows with the keys given there (replace_rows).
    Tables named in keys get their checks (assets.checks) run on what was written. prepare, if given, turns
    each frame into what is written, one frame at a time. frames is emptied as they are written, so that each
    frame can be freed once it is in the warehouse.
    """
    for name in list(frames):
        frame = frames.pop(name)
        key_columns = (keys or {}).get(name)
        # Its key order is judged as computed (enums by their codes), before prepare makes text of them.
        ordered = grain_outcome_of_ordered_frame(frame, key_columns) if key_columns else None
        if prepare is not None:
            frame = prepare(frame)
        table = f"{schema}.{name}"
        replaced_keys = (replacing or {}).get(name)
        if replaced_keys is not None:
            replace_rows(con, table, frame, replaced_keys)
        elif merge:
            con.register("frame_to_merge", frame)
            merge_by_patient(con, table, "select * from frame_to_merge")
            con.unregister("frame_to_merge")
        else:
            replace_table(con, table, frame)
        if replaced_keys is None and not merge:
            metadata = {"row_count": frame.height}
        else:  # the frame replaced part of the table
            metadata = {
                "rows_recomputed": frame.height,
                "row_count": con.execute(f"select count(*) from {table}").fetchall()[0][0],
            }
        write_comments(con, table, descriptions[name])
        checks = check_results(con, table, key_columns, per_patient=merge, grain=ordered) if key_columns else None
        yield dg.MaterializeResult(asset_key=[schema, name], metadata=metadata, check_results=checks)
