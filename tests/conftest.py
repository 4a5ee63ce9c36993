"""Shared fixtures: small inboxes written from CSV text, and a refresh run in-process."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import execute_refresh, failure_reason, settings_from

# Printing PDFs takes seconds per refresh: off for the tests' many refreshes, on where a test asks for it.
os.environ.setdefault("OUTCOMES_BOARD_PACK", "false")

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"

PATIENTS_HEADER = "patient_id,clinic_id,primary_indication\n"


def write_inbox(folder: Path, patients: str = "", infusions: str = "", assessments: str = "") -> Path:
    """Write the three inbox files from dedented CSV text (header included); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("patients.csv", patients), ("infusions.csv", infusions), ("assessments.csv", assessments)):
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


class Refresh:
    """A refresh of one inbox into a warehouse under a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        self.warehouse = root / "warehouse" / "outcomes.duckdb"
        self.reports = root / "reports"

    def run(self, inbox: Path, **overrides):
        overrides.setdefault("as_of", "2026-11-01T00:00:00")
        settings = settings_from(inbox=inbox, warehouse=self.warehouse, reports=self.reports, **overrides)
        return execute_refresh(settings)

    def ok(self, inbox: Path, **overrides):
        result = self.run(inbox, **overrides)
        assert result.success, failure_reason(result)
        return result

    def rows(self, sql: str, *params) -> list[dict]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            cursor = con.execute(sql, list(params))
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def refreshed_inbox(root: Path, patients: str, infusions: str, assessments: str) -> Refresh:
    """Return a Refresh under root of an inbox written from CSV text (write_inbox), run once as of 2026-11-01."""
    refresh = Refresh(root / "out")
    refresh.ok(write_inbox(root / "inbox", patients, infusions, assessments), as_of="2026-11-01T00:00:00")
    return refresh


@pytest.fixture
def refresh(tmp_path: Path) -> Refresh:
    return Refresh(tmp_path / "out")


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory) -> Path:
    """A refreshed demo warehouse (2,000 patients, 4 clinics, 3 years to 2026-06-30), built once per session."""
    from datetime import date

    from pipelines.demo.generator import write_inbox as write_demo_inbox

    root = tmp_path_factory.mktemp("demo-warehouse")
    write_demo_inbox(root / "inbox", patients=2000, clinics=4, seed=7, end_date=date(2026, 6, 30), years=3.0)
    refresh = Refresh(root / "out")
    refresh.ok(root / "inbox", as_of="2026-06-30T00:00:00")
    return refresh.warehouse
