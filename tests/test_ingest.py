"""Reading inbox files: what clinics' exports really look like, and files that cannot be used at all."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.ingest.contract import ASSESSMENTS, PATIENTS, item_values_sql
from pipelines.ingest.csv_inbox import ByteScan, InboxError, first_name_of_header, raw_frame_from_file, scan_bytes
from tests.conftest import write_inbox


def test_bom_crlf_and_quoted_commas_and_newlines_read_correctly(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_bytes(
        b"\xef\xbb\xbfpatient_id,clinic_id,primary_indication,referral_source\r\n"
        b'P1,austin,depression,"Dr Smith, MD"\r\n'
        b'P2,austin,crps,"line one\r\nline two"\r\n'
        b"P3,frisco,ptsd,self\r\n"
    )
    frame = raw_frame_from_file(path, PATIENTS, "patients.csv")
    assert frame["patient_id"].to_list() == ["P1", "P2", "P3"]
    assert frame["referral_source"].to_list() == ["Dr Smith, MD", "line one\r\nline two", "self"]
    # Row numbers count data rows, not lines: P3 is the third row although the file's fifth line.
    assert frame["_row_number"].to_list() == [1, 2, 3]


def test_utf16_export_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_bytes("patient_id,clinic_id,primary_indication\nP1,zürich,depression\n".encode("utf-16"))
    frame = raw_frame_from_file(path, PATIENTS, "patients.csv")
    assert frame["clinic_id"].to_list() == ["zürich"]


def test_file_in_another_encoding_fails_naming_the_file_and_line(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_bytes("patient_id,clinic_id,primary_indication\nP1,münchen,depression\n".encode("latin-1"))
    with pytest.raises(InboxError, match=r"^patients.csv: not UTF-8 text \(byte 0xfc on line 2\)"):
        raw_frame_from_file(path, PATIENTS, "patients.csv")


def test_missing_required_column_fails_naming_the_file_and_the_column(tmp_path):
    path = tmp_path / "assessments.csv"
    path.write_text("patient_id,instrument,administered_at\nP1,phq9,2026-01-01\n")
    with pytest.raises(InboxError, match=r"^assessments.csv: required column 'score' is missing"):
        raw_frame_from_file(path, ASSESSMENTS, "assessments.csv")


def test_column_names_match_ignoring_case_and_spaces(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("Patient_ID , Clinic_Id,PRIMARY_INDICATION\nP1,austin,depression\n")
    frame = raw_frame_from_file(path, PATIENTS, "patients.csv")
    assert frame.row(0, named=True)["patient_id"] == "P1"


def test_two_columns_with_the_same_name_fail_naming_both(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("patient_id,clinic_id,primary_indication,Clinic_ID\nP1,a,depression,b\n")
    with pytest.raises(InboxError, match="columns 'clinic_id' and 'Clinic_ID' have the same name"):
        raw_frame_from_file(path, PATIENTS, "patients.csv")


def test_item_columns_become_one_list_in_item_order_with_gaps_as_nulls(tmp_path):
    path = tmp_path / "assessments.csv"
    path.write_text(
        "patient_id,instrument,administered_at,score,item_3,item_1\n"
        "P1,phq9,2026-01-01,,2,1\nP1,phq9,2026-01-02,5,,\nP1,phq9,2026-01-03,5, , \n"
    )
    frame = raw_frame_from_file(path, ASSESSMENTS, "assessments.csv")
    lists = duckdb.sql(f"select {item_values_sql(frame.columns)} from frame order by _row_number").fetchall()
    assert lists == [(["1", None, "2"],), (None,), (None,)]


def test_row_longer_than_the_header_is_quarantined_not_fatal(tmp_path, refresh):
    inbox = write_inbox(
        tmp_path / "inbox",
        "patient_id,clinic_id,primary_indication\nP1,austin,depression\nP2,austin,depression,extra\nP3,a,crps\n",
        "patient_id,infused_at\nP1,2026-01-05\n",
        "patient_id,instrument,administered_at,score\nP1,phq9,2026-01-05,20\n",
    )
    refresh.ok(inbox)
    rejected = refresh.rows("select row_number, reason, detail from quarantine.rejected_rows")
    assert rejected == [
        {
            "row_number": 2,
            "reason": "malformed_row",
            "detail": "line 3 has 4 values but the header has 3; the values past the header: extra",
        }
    ]
    assert [r["patient_id"] for r in refresh.rows("select patient_id from staging.patients order by 1")] == ["P1", "P3"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\n1,2\n", ByteScan(lines=2, needs_care=False)),
        (b"a,b\r\n1,2\r\n", ByteScan(lines=2, needs_care=False)),  # CRLF: the fast reader's
        (b"a,b\n1,2", ByteScan(lines=2, needs_care=False)),  # no line break at the end
        (b"a,b\r1,2\r", ByteScan(lines=1, needs_care=True)),  # CR-only line ends: one line to the fast reader
        (b"a,b\n1\r,2\n", ByteScan(lines=2, needs_care=True)),  # a CR inside a line
        (b"a,b\n\n1,2\n", ByteScan(lines=3, needs_care=True)),  # a blank line
        (b"a,b\r\n\r\n1,2\r\n", ByteScan(lines=3, needs_care=True)),  # a blank line between CRLFs
        (b"a,b\n1,2\r", ByteScan(lines=2, needs_care=True)),  # a CR as the very last byte
    ],
)
def test_a_scan_finds_the_same_lines_and_line_ends_wherever_the_file_is_cut_into_blocks(data, expected):
    # Every cut into three blocks, so that each pair and triple of bytes is split at some seam.
    cuts = [(i, j) for i in range(1, len(data)) for j in range(i, len(data))]
    assert scan_bytes([data]) == expected
    for i, j in cuts:
        blocks = [block for block in (data[:i], data[i:j], data[j:]) if block]
        assert scan_bytes(blocks) == expected, blocks


def test_a_scan_counts_a_needle_wherever_the_file_is_cut_into_blocks():
    data = b"patient_id,score\nP1,3\npatient_id,4\n"
    cuts = [(i, j) for i in range(1, len(data)) for j in range(i, len(data))]
    assert scan_bytes([data], b"patient_id").needle_count == 2
    for i, j in cuts:
        blocks = [block for block in (data[:i], data[i:j], data[j:]) if block]
        assert scan_bytes(blocks, b"patient_id").needle_count == 2, blocks
    assert scan_bytes([b"patient_id,score\nP1,3\n"], b"patient_id").needle_count == 1


def test_the_header_is_searched_for_by_its_first_name_as_written():
    assert first_name_of_header(" patient_id ,score") == b"patient_id"
    # Written as '"a""b"', the name a"b is not in the file as it is: no needle, so every row is compared.
    assert first_name_of_header('"a""b",score') == b""
