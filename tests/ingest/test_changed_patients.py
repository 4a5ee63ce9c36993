"""The patients of a file read again whole: those whose rows changed, moved, appeared or went."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.incremental.raw_store import changed_patient_keys

COLUMNS = "(_source_file, _row_number, _line_number, _parse_error, patient_id, score, item_1)"


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        f"""
        create table kept as select * from (values
            ('assessments.csv', 1, 2, null, 'P1', '10', null),
            ('assessments.csv', 2, 3, null, 'P2', '12', '1'),
            ('assessments.csv', 3, 4, null, 'P3', '9', null),
            ('assessments.csv', 4, 5, null, 'P4', '15', null),
            ('assessments.csv', 5, 6, null, ' P5 ', '7', null),
            ('assessments.csv', 6, 7, null, 'P9', '3', null)
        ) as t{COLUMNS}
        """
    )
    return con


def changed(con, incoming_rows: str) -> list[str]:
    con.execute(f"create or replace table incoming as select * from (values {incoming_rows}) as t{COLUMNS}")
    return sorted(key for (key,) in con.sql(changed_patient_keys(con, "kept", "incoming")).fetchall())


def test_each_side_of_a_changed_moved_added_or_removed_row_is_recomputed_and_no_other(con):
    incoming = """
        ('assessments.csv', 1, 2, null, 'P1', '10', null),
        ('assessments.csv', 2, 3, null, 'P2', '12', '2'),
        ('assessments.csv', 3, 4, null, 'P6', '9', null),
        ('assessments.csv', 4, 5, null, 'P4', '15', null),
        ('assessments.csv', 5, 6, null, 'P5', '7', null)
    """
    # P1 and P4 are as kept (a null item equals a null item); P2's item changed; row 3 moved from P3 to P6;
    # row 5 lost its spaces (the same patient P5, but not the same row); P9's row went (and with it no patient
    # of the side it is missing from).
    assert changed(con, incoming) == ["P2", "P3", "P5", "P6", "P9"]


def test_a_row_without_a_patient_id_that_came_recomputes_the_rows_without_one(con):
    incoming = ", ".join(str(row) for row in con.sql("select * from kept").fetchall()).replace("None", "null")
    incoming += ", ('assessments.csv', 7, 8, null, '  ', '4', null)"

    assert changed(con, incoming) == [""]


def test_a_file_read_again_with_the_same_rows_changes_no_patient(con):
    incoming = ", ".join(str(row) for row in con.sql("select * from kept").fetchall()).replace("None", "null")
    assert changed(con, incoming) == []


def test_rows_numbered_alike_in_two_files_are_told_apart_by_their_file(con):
    con.execute("insert into kept values ('assessments-2.csv', 1, 2, null, 'P7', '5', null)")
    incoming = ", ".join(str(row) for row in con.sql("select * from kept").fetchall()).replace("None", "null")
    incoming = incoming.replace("'P7', '5'", "'P7', '6'")

    # Row 1 of the second file changed; row 1 of the first did not.
    assert changed(con, incoming) == ["P7"]
