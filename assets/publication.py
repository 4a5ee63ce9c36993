"""Publication: the one step that replaces what readers see, reached only when every blocking check passed."""

from __future__ import annotations

import dagster as dg

from assets.reports import dashboard, patient_pages, refresh_summary_report
from assets.statistics import STATISTICS_MARTS
from pipelines.database import key_of
from pipelines.resources import Reports, RulesResource, Warehouse, rules_from
from pipelines.sql_models import sql_models

PUBLISHED_INPUTS = (
    [key_of(model.table) for model in sql_models()]
    + [key_of(f"marts.{name}") for name in STATISTICS_MARTS]
    + [refresh_summary_report.key, dashboard.key, patient_pages.key]
)


@dg.asset(
    key=["published_warehouse"],
    group_name="publication",
    deps=PUBLISHED_INPUTS,
    kinds={"duckdb"},
)
def published_warehouse(warehouse: Warehouse, reports: Reports, rules: RulesResource) -> dg.MaterializeResult:
    """The warehouse and reports readers use, replaced atomically from this run's working copy."""
    generation = warehouse.publish(rules_from(rules), reports)
    return dg.MaterializeResult(
        metadata={
            "warehouse": dg.MetadataValue.path(str(warehouse.published_path)),
            "reports": dg.MetadataValue.path(str(reports.published_dir)),
            "generation": dg.MetadataValue.path(str(generation)),
            "size_mb": round(warehouse.published_path.stat().st_size / 1e6, 1),
            "as_of": warehouse.as_of_time.isoformat(),
        }
    )
