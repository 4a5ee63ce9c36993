"""The single Dagster Definitions object: what `dagster dev`, the schedule and the CLI all load."""

from __future__ import annotations

import dagster as dg

from assets.ingest import ingest_assets
from assets.outcomes import outcome_tables
from assets.publication import published_warehouse
from assets.reports import dashboard, patient_pages, refresh_summary_report
from assets.scope import refresh_scope_asset
from assets.statistics import statistics_marts
from assets.tables import seed_assets, sql_assets
from pipelines.progress import step_progress
from pipelines.resources import Settings, resources_from
from pipelines.schedules import nightly_schedule
from pipelines.sensors import inbox_sensor

REFRESH_JOB = "refresh"


def build_definitions(settings=None) -> dg.Definitions:
    """Return the Definitions configured from settings (default: the environment)."""
    settings = settings or Settings()
    # In-process: DuckDB allows one writer process, and a process per step would
    # re-import Dagster for every step.
    refresh_job = dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=dg.in_process_executor,
        description="Read the inbox, validate, compute outcomes, check, and publish warehouse and reports.",
    )
    return dg.Definitions(
        assets=[
            *ingest_assets,
            refresh_scope_asset(),
            *seed_assets,
            *sql_assets,
            outcome_tables,
            statistics_marts,
            refresh_summary_report,
            dashboard,
            patient_pages,
            published_warehouse,
        ],
        jobs=[refresh_job],
        schedules=[nightly_schedule(refresh_job, settings.schedule_cron, settings.schedule_timezone)],
        sensors=[inbox_sensor(refresh_job, settings.sensor_interval_seconds)],
        resources=resources_from(settings),
        executor=dg.in_process_executor,
        # The refresh command turns step_progress on; Dagster's own console logger stays the default.
        loggers={"console": dg.colored_console_logger, "step_progress": step_progress},
    )


defs = build_definitions()
