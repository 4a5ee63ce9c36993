"""A sensor that refreshes the warehouse when files in the inbox change."""

from __future__ import annotations

import hashlib

import dagster as dg

from pipelines.resources import Inbox


def inbox_sensor(job: dg.UnresolvedAssetJobDefinition, interval_seconds: int) -> dg.SensorDefinition:
    """Return a sensor that requests one refresh per distinct state of the inbox folder."""

    @dg.sensor(
        name="inbox_changed",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts a refresh when a file in the inbox is added, removed or rewritten.",
    )
    def inbox_changed(context: dg.SensorEvaluationContext, inbox: Inbox):
        fingerprint = inbox.fingerprint()
        if not fingerprint:
            return dg.SkipReason(f"the inbox {inbox.path} is empty or missing")
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        if digest == context.cursor:
            return dg.SkipReason("no file in the inbox changed since the last refresh request")
        context.update_cursor(digest)
        # The run key makes a request idempotent: the same inbox state never runs twice.
        return dg.RunRequest(run_key=f"inbox-{digest}")

    return inbox_changed
