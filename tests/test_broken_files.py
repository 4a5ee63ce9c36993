"""A corpus of broken inbox files (tests/fixtures/broken_files): every line and row accounted for, or one clear error.

Each file is one shape a clinic's export really takes (Excel's CR-only "CSV
(Macintosh)", UTF-16, a stray quote, a pasted header, padded ids, hostile
values...). It takes the place of its record type's file in a small valid
inbox; expected.csv holds the hand-counted account of the file, or the words
the failed run must say. For every file of every run that publishes:
lines read = header + blank + continuation lines + rows read, and rows read =
accepted + rejected + exact duplicates.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from pipelines.cli import failure_reason
from tests.conftest import FIXTURES, write_inbox

CORPUS = FIXTURES / "broken_files"
EXPECTED = {row["shape"]: row for row in csv.DictReader((CORPUS / "expected.csv").open())}
COUNTS = (
    "lines_read",
    "header_lines",
    "blank_lines",
    "continuation_lines",
    "rows_read",
    "rows_accepted",
    "rows_rejected",
    "duplicates_removed",
)


def valid_inbox(folder: Path) -> Path:
    return write_inbox(
        folder,
        """\
        patient_id,clinic_id,primary_indication,birth_year,referral_source
        P1,austin,depression,1980,self
        P2,austin,ptsd,1975,Dr Smith
        P3,denver,crps,1990,self
        """,
        """\
        patient_id,infused_at,dose_mg_per_kg
        P1,2026-01-05T10:00:00,0.5
        P2,2026-01-06T10:00:00,0.5
        P3,2026-01-07T10:00:00,0.5
        """,
        """\
        patient_id,instrument,administered_at,score
        P1,phq9,2026-01-05T09:00:00,20
        P2,pcl5,2026-01-06T09:00:00,50
        P3,nrs_pain,2026-01-07T09:00:00,8
        """,
    )


def test_the_corpus_has_at_least_forty_shapes_and_each_has_its_expectation():
    files = {path.stem for path in CORPUS.glob("*.csv") if path.name != "expected.csv"}
    assert len(files) >= 40
    assert files == EXPECTED.keys()


@pytest.mark.parametrize("shape", sorted(EXPECTED))
def test_a_broken_file_is_accounted_for_line_by_line_or_fails_in_one_clear_line(shape, refresh, tmp_path):
    expected = EXPECTED[shape]
    record_file = shape.rsplit("__", 1)[1] + ".csv"
    inbox = valid_inbox(tmp_path / "inbox")
    shutil.copyfile(CORPUS / f"{shape}.csv", inbox / record_file)
    result = refresh.run(inbox)
    if expected["run_fails_with"]:
        assert not result.success
        message = failure_reason(result)
        assert message.startswith(f"{record_file}: "), message
        assert expected["run_fails_with"] in message
        assert "\n" not in message and len(message) < 400, "one line, and no more than 200 characters of data"
        return
    assert result.success, failure_reason(result)
    accounts = {row["source_file"]: row for row in refresh.rows("select * from quarantine.file_accounts")}
    assert set(accounts) == {"patients.csv", "infusions.csv", "assessments.csv"}
    for account in accounts.values():
        assert account["lines_read"] == (
            account["header_lines"] + account["blank_lines"] + account["continuation_lines"] + account["rows_read"]
        )
        assert account["rows_read"] == (
            account["rows_accepted"] + account["rows_rejected"] + account["duplicates_removed"]
        )
    assert {column: accounts[record_file][column] for column in COUNTS} == {
        column: int(expected[column]) for column in COUNTS
    }
    reasons = refresh.rows(
        "select reason from quarantine.rejected_rows where source_file = ? order by reason", record_file
    )
    assert ";".join(row["reason"] for row in reasons) == expected["reasons"]
