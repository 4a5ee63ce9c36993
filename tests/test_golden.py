"""The shared golden cases (copied from ../shared/golden): hand-checked inboxes and expected marts."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import GOLDEN

CASES = ["basic", "bad_inputs"]
TABLE_KEYS = {
    "treatment_series": ("patient_id", "series_number"),
    "series_outcomes": ("patient_id", "series_number", "instrument"),
}


def comparable(value):
    """Return one form for a value read from the expected CSV text or from DuckDB."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def same(expected, actual) -> bool:
    expected, actual = comparable(expected), comparable(actual)
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(expected, actual, abs_tol=1e-3)
    return expected == actual


def expected_rows(case: str, table: str) -> list[dict]:
    with open(GOLDEN / case / "expected" / f"{table}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("table", sorted(TABLE_KEYS))
def test_golden_case_marts_equal_the_hand_checked_rows(refresh, case: str, table: str):
    refresh.ok(GOLDEN / case / "inbox")
    key = TABLE_KEYS[table]
    actual = {tuple(str(row[k]) for k in key): row for row in refresh.rows(f"select * from marts.{table}")}
    expected = {
        tuple(str(int(float(row[k]))) if k == "series_number" else row[k] for k in key): row
        for row in expected_rows(case, table)
    }
    assert sorted(actual) == sorted(expected)
    differences = [
        f"{k} {column}: {actual[k][column]!r} != expected {want!r}"
        for k, row in expected.items()
        for column, want in row.items()
        if not same(want, actual[k][column])
    ]
    assert differences == []


def test_bad_inputs_case_rejects_exactly_the_expected_rows_with_their_reasons(refresh):
    refresh.ok(GOLDEN / "bad_inputs" / "inbox")
    with open(GOLDEN / "bad_inputs" / "expected_rejections.csv", newline="") as handle:
        expected = {(r["source_file"], int(r["row_number"]), r["reason"]) for r in csv.DictReader(handle)}
    actual = {
        (Path(r["source_file"]).name, r["row_number"], r["reason"])
        for r in refresh.rows("select source_file, row_number, reason from quarantine.rejected_rows")
    }
    assert actual == expected


def test_bad_inputs_case_keeps_exact_duplicates_once_and_counts_them(refresh):
    refresh.ok(GOLDEN / "bad_inputs" / "inbox")
    accounts = {r["source_file"]: r for r in refresh.rows("select * from quarantine.file_accounts")}
    # infusions.csv row 27 and assessments.csv row 49 repeat earlier rows exactly.
    assert accounts["infusions.csv"]["duplicates_removed"] == 1
    assert accounts["assessments.csv"]["duplicates_removed"] == 1
    assert accounts["infusions.csv"] == {
        "source_file": "infusions.csv",
        "record_type": "infusion",
        "lines_read": 30,
        "header_lines": 1,
        "blank_lines": 0,
        "continuation_lines": 0,
        "rows_read": 29,
        "rows_accepted": 24,
        "rows_rejected": 4,
        "duplicates_removed": 1,
    }
