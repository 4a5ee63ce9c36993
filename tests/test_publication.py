"""Publication is atomic: a failed run leaves the published warehouse and reports exactly as they were."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.cli import failure_reason, settings_from
from pipelines.definitions import REFRESH_JOB, build_definitions
from pipelines.resources import Warehouse
from tests.conftest import GOLDEN, write_inbox


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_refresh_without_a_score_column_fails_naming_the_file_and_column_and_publishes_nothing(refresh, tmp_path):
    refresh.ok(GOLDEN / "basic" / "inbox")
    before, reports_before = digest(refresh.warehouse), folder_digest(refresh.reports)
    inbox = write_inbox(
        tmp_path / "broken",
        (GOLDEN / "basic" / "inbox" / "patients.csv").read_text(),
        (GOLDEN / "basic" / "inbox" / "infusions.csv").read_text(),
        "patient_id,instrument,administered_at\nP1,phq9,2026-01-05\n",
    )
    result = refresh.run(inbox)
    assert not result.success
    assert failure_reason(result).startswith("assessments.csv: required column 'score' is missing")
    assert digest(refresh.warehouse) == before
    assert folder_digest(refresh.reports) == reports_before


def test_a_failing_blocking_check_stops_publication(refresh):
    refresh.ok(GOLDEN / "basic" / "inbox")
    before = digest(refresh.warehouse)

    @dg.asset_check(asset=dg.AssetKey(["marts", "series_outcomes"]), blocking=True)
    def always_fails() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False)

    settings = settings_from(
        inbox=GOLDEN / "bad_inputs" / "inbox",
        warehouse=refresh.warehouse,
        reports=refresh.reports,
        as_of="2026-11-01T00:00:00",
    )
    definitions = build_definitions(settings)
    definitions = dg.Definitions.merge(definitions, dg.Definitions(asset_checks=[always_fails]))
    result = definitions.resolve_job_def(REFRESH_JOB).execute_in_process(raise_on_error=False)
    assert not result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert dg.AssetKey(["marts", "series_outcomes"]) in materialized
    assert dg.AssetKey(["published_warehouse"]) not in materialized
    assert digest(refresh.warehouse) == before


def test_a_duplicate_key_found_by_a_tables_own_grain_check_stops_publication(refresh, monkeypatch):
    refresh.ok(GOLDEN / "basic" / "inbox")
    before = digest(refresh.warehouse)
    import assets.checks

    real = assets.checks.grain_is_unique_and_not_null

    def duplicated_series(con, table, key_columns, per_patient):
        if table == "marts.treatment_series":  # as if a join had doubled a series
            return real(
                con, f"(select * from {table} union all (select * from {table} limit 1))", key_columns, per_patient
            )
        return real(con, table, key_columns, per_patient)

    monkeypatch.setattr(assets.checks, "grain_is_unique_and_not_null", duplicated_series)
    result = refresh.run(GOLDEN / "basic" / "inbox", refresh_mode="full")
    assert not result.success
    assert failure_reason(result) == (
        "blocking check grain_is_unique_and_not_null on marts/treatment_series failed; nothing was published"
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.metadata["duplicate_keys"].value) for e in failed] == [
        ("marts/treatment_series", 1)
    ]
    assert digest(refresh.warehouse) == before


READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("select count(*) from quarantine.rejected_rows").fetchone()[0], flush=True)
sys.stdin.readline()  # hold the warehouse open until told
print(con.execute("select count(*) from quarantine.rejected_rows").fetchone()[0], flush=True)
"""


def test_refresh_runs_while_an_analyst_holds_the_published_warehouse_open(refresh):
    refresh.ok(GOLDEN / "basic" / "inbox")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(refresh.warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "0"
        started = time.monotonic()
        refresh.ok(GOLDEN / "bad_inputs" / "inbox")
        assert time.monotonic() - started < 60
        # The analyst keeps the version they opened; a new connection sees the new one.
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "0"
    finally:
        reader.kill()
    with duckdb.connect(str(refresh.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 16


def test_a_second_writer_is_refused_with_a_clear_message(refresh):
    holder = Warehouse(path=str(refresh.warehouse))
    with dg.build_resources({"warehouse": holder}):
        result = refresh.run(GOLDEN / "basic" / "inbox")
    assert not result.success
    assert failure_reason(result).startswith(f"another refresh is writing {refresh.warehouse}")
