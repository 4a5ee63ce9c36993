"""The nightly refresh schedule."""

from __future__ import annotations

import dagster as dg


def nightly_schedule(job: dg.UnresolvedAssetJobDefinition, cron: str, timezone: str) -> dg.ScheduleDefinition:
    """Return the schedule that runs the refresh every night (02:00 clinic time by default)."""
    return dg.ScheduleDefinition(
        name="nightly_refresh",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Refresh every night, after the clinics' end-of-day exports have landed: incremental (only patients "
            "with new, changed or removed rows) when the last publication allows it, else full; the run's "
            "refresh_scope in meta.refreshes says which and why."
        ),
    )
