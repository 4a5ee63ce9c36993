"""Which patients this refresh recomputes: every one, or only those whose rows are new, changed or judged anew."""

from __future__ import annotations

import dagster as dg

from assets.ingest import sources_read
from pipelines.incremental.policy import plan_refresh_scope
from pipelines.ingest.contract import RECORD_TYPES
from pipelines.resources import RulesResource, Warehouse, rules_from
from pipelines.sql_models import functions_sql


def refresh_scope_asset() -> dg.AssetsDefinition:
    """Return the asset that decides which patients this refresh recomputes."""

    @dg.asset(
        key=["raw", "refresh_scope"],
        group_name="raw",
        deps=[dg.AssetKey(["raw", record_type]) for record_type in RECORD_TYPES],
        kinds={"duckdb"},
        description="The patients this refresh recomputes (patient_key, reason): every patient in a full refresh; "
        "after a published one, those with new, changed or removed rows or rows the new as-of time judges anew.",
    )
    def refresh_scope(warehouse: Warehouse, rules: RulesResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            con.execute(functions_sql())  # the raw rows' timestamps are parsed as validation parses them
            line, reasons = plan_refresh_scope(
                con,
                sources_read(con),
                warehouse.full_read_reason,
                rules_from(rules),
                warehouse.as_of_time,
                warehouse.raw_rows_path,
            )
        return dg.MaterializeResult(
            metadata={
                "refresh": line,
                "patients_recomputed": dg.MetadataValue.json(reasons) if reasons else "every patient",
            }
        )

    return refresh_scope
