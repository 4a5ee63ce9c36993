"""Analysts' queries and the refresh in two processes: neither blocks the other."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

from pipelines.demo.generator import write_inbox
from tests.conftest import GOLDEN


def test_sql_works_while_a_refresh_is_running_and_the_refresh_completes(tmp_path):
    warehouse, reports = tmp_path / "w.duckdb", tmp_path / "reports"
    base = [sys.executable, "-m", "pipelines.cli"]
    subprocess.run(
        [
            *base,
            "refresh",
            "--inbox",
            str(GOLDEN / "basic" / "inbox"),
            "--warehouse",
            str(warehouse),
            "--reports",
            str(reports),
        ],
        check=True,
        capture_output=True,
    )
    write_inbox(tmp_path / "inbox", patients=15000, clinics=4, seed=5, end_date=date(2026, 6, 30), years=3.0)

    refresh = subprocess.Popen(
        [
            *base,
            "refresh",
            "--inbox",
            str(tmp_path / "inbox"),
            "--warehouse",
            str(warehouse),
            "--reports",
            str(reports),
            "--as-of",
            "2026-06-30T00:00:00",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answers_during_refresh = []
    while refresh.poll() is None:
        query = subprocess.run(
            [
                *base,
                "sql",
                "--warehouse",
                str(warehouse),
                "--format",
                "csv",
                "select count(*) as n from marts.treatment_series",
            ],
            capture_output=True,
            text=True,
        )
        if refresh.poll() is None:
            answers_during_refresh.append((query.returncode, query.stdout, query.stderr))
        time.sleep(0.1)
    _stdout, stderr = refresh.communicate()
    assert refresh.returncode == 0, stderr
    assert answers_during_refresh, "the refresh finished before any query ran; give it a larger inbox"
    assert all(code == 0 for code, _, _ in answers_during_refresh), answers_during_refresh[:1]
    # Readers saw the previously published warehouse until the new one replaced it.
    assert {out for _, out, _ in answers_during_refresh} <= {"n\n10\n", f"n\n{_series(warehouse)}\n"}


def _series(warehouse) -> int:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select count(*) from marts.treatment_series").fetchall()[0][0]
