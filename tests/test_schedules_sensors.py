"""The nightly schedule and the inbox sensor, evaluated with Dagster's own test contexts."""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.resources import Inbox, Settings


def test_nightly_schedule_runs_the_refresh_at_two_in_the_configured_timezone():
    definitions = build_definitions(Settings(schedule_timezone="Europe/London"))
    schedule = definitions.get_schedule_def("nightly_refresh")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 2 * * *",
        "Europe/London",
        "refresh",
    )
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 2, tzinfo=ZoneInfo("Europe/London"))
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert len(requests) == 1


def test_schedule_timezone_defaults_to_america_chicago(monkeypatch):
    monkeypatch.delenv("OUTCOMES_SCHEDULE_TIMEZONE", raising=False)
    assert build_definitions(Settings()).get_schedule_def("nightly_refresh").execution_timezone == "America/Chicago"


def evaluate(sensor: dg.SensorDefinition, inbox: Inbox, cursor: str | None):
    context = dg.build_sensor_context(cursor=cursor, resources={"inbox": inbox})
    return sensor.evaluate_tick(context)


def test_inbox_sensor_requests_one_refresh_per_new_state_of_the_inbox(tmp_path):
    sensor = build_definitions(Settings()).get_sensor_def("inbox_changed")
    inbox = Inbox(path=str(tmp_path))
    assert evaluate(sensor, inbox, None).run_requests == []  # empty inbox: nothing to do

    (tmp_path / "patients.csv").write_text("patient_id,clinic_id,primary_indication\n")
    first = evaluate(sensor, inbox, None)
    assert len(first.run_requests) == 1
    assert evaluate(sensor, inbox, first.cursor).run_requests == []  # unchanged: skipped

    (tmp_path / "patients.csv").write_text("patient_id,clinic_id,primary_indication\nP1,a,depression\n")
    os.utime(tmp_path / "patients.csv", ns=(1, 2))
    second = evaluate(sensor, inbox, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_the_schedules_description_says_it_runs_the_default_refresh_incremental_when_allowed():
    description = build_definitions(Settings()).get_schedule_def("nightly_refresh").description
    assert description.startswith("Refresh every night") and "incremental" in description and "Full" not in description
