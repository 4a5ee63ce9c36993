"""An incremental refresh recomputes only patients with changes, and publishes exactly what a full refresh would."""

from __future__ import annotations

import os
import re
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import pipelines.resources as resources
from pipelines.demo.generator import write_inbox as write_demo_inbox
from pipelines.incremental.file_states import FileState, appended_bytes, digest_of_bytes, unchanged_prefix
from tests.conftest import GOLDEN, Refresh

NEW_DAY = "2026-06-29"  # the last day the generated inbox (end date 30 June) has rows of
FIRST_AS_OF = f"{NEW_DAY}T00:00:00"
SECOND_AS_OF = "2026-07-01T00:00:00"
TIMESTAMP = {"infusions.csv": "infused_at", "assessments.csv": "administered_at"}
COMPARED_SCHEMAS = ("quarantine", "staging", "intermediate", "marts")


def read_text_csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def write_text_csv(frame: pl.DataFrame, path: Path, append: bool = False) -> None:
    if append:
        with open(path, "a", newline="") as handle:
            frame.write_csv(handle, include_header=False)
    else:
        frame.write_csv(path)


def split_inbox(generated: Path, yesterday: Path) -> dict[str, pl.DataFrame]:
    """Write the inbox as it stood before the new day into yesterday; return each file's rows of the new day.

    Two rows of the new day stay in yesterday's files: dated after the first
    as-of time, they are rejected as future then and accepted the next day.
    """
    yesterday.mkdir(parents=True)
    new_rows = {}
    for name in ("patients.csv", "infusions.csv", "assessments.csv"):
        frame = read_text_csv(generated / name)
        if name == "patients.csv":
            # The last ten patients arrive with the new day.
            new_rows[name], frame = frame.tail(10), frame.head(frame.height - 10)
        else:
            is_new = pl.col(TIMESTAMP[name]).str.starts_with(NEW_DAY)
            kept_early = pl.int_range(pl.len()).filter(is_new).head(1)  # one new-day row already sent early
            stays = ~is_new | pl.int_range(pl.len()).is_in(kept_early)
            new_rows[name], frame = frame.filter(~stays), frame.filter(stays)
        write_text_csv(frame, yesterday / name)
    return new_rows


def tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() where schema_name in "
            f"{COMPARED_SCHEMAS} union all select schema_name || '.' || view_name from duckdb_views() "
            f"where schema_name in {COMPARED_SCHEMAS} order by 1"
        ).fetchall()
        return {name: con.sql(f"select * from {name}").pl() for (name,) in names}


def sorted_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in one order whatever order they were written in: floats last, so that rounding cannot reorder."""
    exact = [c for c, t in frame.schema.items() if not t.is_float() and not isinstance(t, pl.List | pl.Struct)]
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    return frame.sort([*exact, *floats], nulls_last=True) if exact or floats else frame


def future_rows(refresh: Refresh) -> dict[tuple[str, int], str]:
    """Return the patient of each row rejected as dated after the as-of time, by (source_file, row_number)."""
    rows = refresh.rows(
        "select source_file, row_number, patient_id from quarantine.rejected_rows where reason = 'future_timestamp'"
    )
    return {(row["source_file"], row["row_number"]): row["patient_id"] for row in rows}


def statistics_cells(result) -> str:
    """Return how a refresh made the statistics' cells: counted from every series, or brought up to date."""
    (cells,) = [
        event.materialization.metadata["cells"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["intermediate", "statistics_cells_source"])
    ]
    return cells


def assert_same_warehouse(incremental: Path, full: Path) -> None:
    left, right = tables(incremental), tables(full)
    assert left.keys() == right.keys()
    for name in left:
        # Aggregates sum the same numbers in another order: equal to the last few bits.
        try:
            assert_frame_equal(sorted_rows(left[name]), sorted_rows(right[name]), check_exact=False, rel_tol=1e-9)
        except AssertionError as difference:  # pragma: no cover - the message names the table
            raise AssertionError(f"{name}: {difference}") from None


@pytest.fixture(scope="module")
def inboxes(tmp_path_factory) -> tuple[Path, Path, dict[str, pl.DataFrame]]:
    root = tmp_path_factory.mktemp("incremental")
    write_demo_inbox(root / "generated", patients=250, clinics=3, seed=11, end_date=date(2026, 6, 30), years=1.0)
    new_rows = split_inbox(root / "generated", root / "inbox")
    return root, root / "inbox", new_rows


def test_a_day_of_new_rows_recomputes_only_their_patients_and_equals_a_full_refresh(inboxes, tmp_path):
    _, inbox, new_rows = inboxes
    nightly = Refresh(tmp_path / "nightly")
    nightly.ok(inbox, as_of=FIRST_AS_OF)
    assert nightly.rows("select refresh_scope from meta.refreshes")[0]["refresh_scope"].startswith("full")
    future_before = future_rows(nightly)

    for name, frame in new_rows.items():
        write_text_csv(frame, inbox / name, append=True)
    # A correction in the middle of a file: infusions.csv is no longer the old file plus new rows.
    infusions = read_text_csv(inbox / "infusions.csv")
    corrected = infusions.with_columns(
        pl.when(pl.int_range(pl.len()) == 20)
        .then(pl.lit("0.6"))
        .otherwise(pl.col("dose_mg_per_kg"))
        .alias("dose_mg_per_kg")
    )
    write_text_csv(corrected, inbox / "infusions.csv")
    result = nightly.ok(inbox, as_of=SECOND_AS_OF)

    last = nightly.rows("select refresh_scope, patients_recomputed from meta.refreshes order by refreshed_at")[-1]
    changed = {
        *new_rows["patients.csv"]["patient_id"],
        *new_rows["infusions.csv"]["patient_id"],
        *new_rows["assessments.csv"]["patient_id"],
        infusions["patient_id"][20],
    }
    assert last["refresh_scope"].startswith("incremental")
    # The changed patients, plus those of the rows the as-of time passed overnight (the new-day rows sent
    # early). The rows the generator dates years ahead by a typing error are as future as they were
    # yesterday: their patients are not recomputed, and still come out as a full refresh's (below).
    future_now = future_rows(nightly)
    passed = {patient for row, patient in future_before.items() if row not in future_now}
    still_future = set(future_now.values()) - changed - passed
    assert passed and still_future
    assert last["patients_recomputed"] == len(changed | passed)
    # The kept cells of the statistics took in the changes: the series were not all counted again.
    assert statistics_cells(result).startswith("brought up to date")

    full = Refresh(tmp_path / "full")
    full.ok(inbox, as_of=SECOND_AS_OF)
    assert full.rows("select refresh_scope from meta.refreshes")[0]["refresh_scope"].startswith("full")
    assert_same_warehouse(nightly.warehouse, full.warehouse)


def test_a_second_night_builds_on_the_first_and_still_equals_a_full_refresh(inboxes, tmp_path):
    root, _, new_rows = inboxes
    inbox = tmp_path / "inbox"
    split_inbox(root / "generated", inbox)  # yesterday's inbox afresh: the module's gains rows in another test
    nightly = Refresh(tmp_path / "nightly")
    nightly.ok(inbox, as_of=FIRST_AS_OF)
    for name, frame in new_rows.items():
        write_text_csv(frame, inbox / name, append=True)
    first_night = nightly.ok(inbox, as_of=SECOND_AS_OF)
    # The second night: every 97th score corrected to 0, in the middle of the file as well, which moves some
    # of their patients' responses, remissions and relief, on top of what the first night brought up to date.
    assessments = read_text_csv(inbox / "assessments.csv")
    corrected = assessments.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(pl.lit("0")).otherwise(pl.col("score")).alias("score")
    )
    write_text_csv(corrected, inbox / "assessments.csv")
    second_night = nightly.ok(inbox, as_of=SECOND_AS_OF)

    # Each night's relief curves come from the curves the night before published, not from every cell; the
    # first night's new rows happen to move no relief.
    made = [statistics_cells(result) for result in (first_night, second_night)]
    relief_cohorts = [
        re.search(r"brought up to date: .*relief curves of (\d+) cohorts from their kept counts", m) for m in made
    ]
    assert all(relief_cohorts), made
    assert int(relief_cohorts[1].group(1)) > 0, made[1]
    full = Refresh(tmp_path / "full")
    full.ok(inbox, as_of=SECOND_AS_OF)
    assert_same_warehouse(nightly.warehouse, full.warehouse)


def test_changed_clinical_parameters_recompute_every_patient(inboxes, tmp_path):
    _, inbox, _ = inboxes
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox, as_of=FIRST_AS_OF)
    refresh.ok(inbox, as_of=FIRST_AS_OF, series_gap_days=30)
    last = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at")[-1]
    assert last["refresh_scope"] == "full: the clinical parameters changed since the last refresh"


def test_after_a_failed_run_the_next_one_reads_everything_and_is_right(inboxes, tmp_path):
    _, inbox, _ = inboxes
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox, as_of=FIRST_AS_OF)
    assessments = (inbox / "assessments.csv").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("patients.csv", "infusions.csv"):
        (broken / name).write_bytes((inbox / name).read_bytes())
    (broken / "assessments.csv").write_bytes(assessments.replace(b"score", b"total", 1))
    assert not refresh.run(broken, as_of=SECOND_AS_OF).success
    refresh.ok(inbox, as_of=SECOND_AS_OF)
    last = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at")[-1]
    assert last["refresh_scope"] == (
        "full: the kept raw tables are not those of the published warehouse (a refresh failed or was stopped)"
    )


def test_rows_are_taken_as_appended_only_when_the_old_file_is_unchanged_before_them(tmp_path):
    path = tmp_path / "assessments.csv"
    path.write_bytes(b"patient_id,score\nP1,3\n")
    previous = FileState(
        "inbox_csv",
        "assessments.csv",
        path.stat().st_size,
        path.stat().st_mtime_ns,
        digest_of_bytes(path.read_bytes()),
        1,
        True,
    )
    path.write_bytes(b"patient_id,score\nP1,3\nP2,4\n")
    assert appended_bytes(path, previous)[:2] == (b"patient_id,score\n", b"P2,4\n")
    path.write_bytes(b"patient_id,score\nP1,5\nP2,4\n")
    assert appended_bytes(path, previous) is None  # an old row changed
    path.write_bytes(b"patient_id,score\nP1,3\n")
    assert appended_bytes(path, previous) is None  # nothing new


def test_rows_appended_are_read_only_from_the_file_whose_first_bytes_were_compared(tmp_path):
    """Files are compared side by side before their appended rows are read: a file written again in between is
    compared anew, never its new rows stuck onto the old file's digest."""
    path = tmp_path / "assessments.csv"
    path.write_bytes(b"patient_id,score\nP1,3\n")
    old = path.read_bytes()
    previous = FileState("inbox_csv", "assessments.csv", len(old), 0, digest_of_bytes(old), 1, True)
    path.write_bytes(b"patient_id,score\nP1,3\nP2,4\n")
    prefix = unchanged_prefix(path, previous)
    assert prefix is not None
    assert appended_bytes(path, previous, prefix) == (
        b"patient_id,score\n",
        b"P2,4\n",
        digest_of_bytes(path.read_bytes()),
    )
    replacement = tmp_path / "written-again.csv"
    replacement.write_bytes(b"patient_id,score\nP1,5\nP2,4\n")  # an old row changed: to be read whole
    os.replace(replacement, path)
    assert appended_bytes(path, previous, prefix) is None
    path.write_bytes(b"patient_id,score\nP1,3\nP2,4\nP3,1\n")  # written again, still only appended to
    assert appended_bytes(path, previous, prefix)[1] == b"P2,4\nP3,1\n"


def test_per_patient_tables_read_only_seeds_raw_rows_and_other_per_patient_tables():
    from assets.outcomes import OUTCOME_TABLES
    from pipelines.incremental.scope import REFERENCE_TABLES
    from pipelines.sql_models import sql_models

    per_patient = {m.table for m in sql_models() if m.is_per_patient} | {f"intermediate.{n}" for n in OUTCOME_TABLES}
    for model in sql_models():
        if model.is_per_patient:
            outside = [
                i
                for i in model.inputs
                if not i.startswith(("seeds.", "raw.")) and i not in per_patient and i not in REFERENCE_TABLES
            ]
            assert outside == [], f"{model.table} is merged per patient but reads whole tables {outside}"
    assert "marts.series_outcomes" in per_patient and "quarantine.file_accounts" not in per_patient


def test_a_refresh_with_nothing_new_recomputes_no_patient_and_publishes_the_same_tables(tmp_path):
    refresh = Refresh(tmp_path / "out")
    refresh.ok(GOLDEN / "basic" / "inbox")
    before = tables(refresh.warehouse)
    refresh.ok(GOLDEN / "basic" / "inbox")
    last = refresh.rows("select refresh_scope, patients_recomputed from meta.refreshes order by refreshed_at")[-1]
    assert (last["refresh_scope"], last["patients_recomputed"]) == ("incremental: 0 patients recomputed", 0)
    after = tables(refresh.warehouse)
    assert before.keys() == after.keys()
    for name in before:
        assert_frame_equal(sorted_rows(before[name]), sorted_rows(after[name]), check_exact=False, rel_tol=1e-9)


def files_read(result) -> dict[str, str]:
    """Return how the raw/sources step of a refresh read each contract CSV."""
    (metadata,) = [
        event.materialization.metadata["inbox_csv"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["raw", "sources"])
    ]
    return metadata["files"]


def test_files_written_again_with_the_same_bytes_are_unchanged_and_a_changed_byte_is_read(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(GOLDEN / "basic" / "inbox", inbox)
    incremental = Refresh(tmp_path / "incremental")
    incremental.ok(inbox)
    # The nightly export writes every file anew: same bytes, a new modification time.
    for path in inbox.glob("*.csv"):
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    files = files_read(incremental.ok(inbox))
    assert set(files.values()) == {"unchanged (written again with the same content)"}, files
    (last,) = incremental.rows("select patients_recomputed from meta.refreshes order by refreshed_at desc limit 1")
    assert last["patients_recomputed"] == 0
    # One score corrected in place: same size, another byte. The file is read whole and P1 recomputed.
    assessments = inbox / "assessments.csv"
    corrected = assessments.read_bytes().replace(b"P1,phq9,2026-01-07,16", b"P1,phq9,2026-01-07,18", 1)
    assert len(corrected) == assessments.stat().st_size and corrected != assessments.read_bytes()
    assessments.write_bytes(corrected)
    files = files_read(incremental.ok(inbox))
    assert files["assessments.csv"] == "read whole", files
    (last,) = incremental.rows("select patients_recomputed from meta.refreshes order by refreshed_at desc limit 1")
    assert last["patients_recomputed"] == 1
    full = Refresh(tmp_path / "full")
    full.ok(inbox, refresh_mode="full")
    assert_same_warehouse(incremental.warehouse, full.warehouse)


def test_rows_appended_to_a_file_with_blank_lines_and_a_ragged_row_equal_a_full_refresh(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(GOLDEN / "basic" / "inbox", inbox)
    infusions = inbox / "infusions.csv"
    original = infusions.read_bytes()
    first_row_end = original.index(b"\n", original.index(b"\n") + 1) + 1
    # A blank line and a row longer than the header: the careful reader's work, numbered by line.
    infusions.write_bytes(original[:first_row_end] + b"\n" + original[first_row_end:] + b"P1,2026-02-01,0.5,40,x\n")
    incremental = Refresh(tmp_path / "incremental")
    incremental.ok(inbox)
    with open(infusions, "ab") as handle:
        handle.write(b"\nP2,2026-02-02,0.5,40\n")
    incremental.ok(inbox)
    (last,) = incremental.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")
    assert last["refresh_scope"].startswith("incremental")
    full = Refresh(tmp_path / "full")
    full.ok(inbox, refresh_mode="full")
    assert_same_warehouse(incremental.warehouse, full.warehouse)
    account = full.rows("select * from quarantine.file_accounts where source_file = 'infusions.csv'")[0]
    assert (account["blank_lines"], account["rows_rejected"]) == (2, 1)
    assert incremental.rows("select line_number from quarantine.rejected_rows") == [
        {"line_number": original.count(b"\n") + 2}
    ]


def test_repeated_refreshes_of_unchanged_data_level_the_warehouse_off_within_twice_a_fresh_build(inboxes, tmp_path):
    _, inbox, _ = inboxes
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox, as_of=FIRST_AS_OF)
    fresh = refresh.warehouse.stat().st_size
    sizes = []
    for _ in range(6):
        refresh.ok(inbox, as_of=FIRST_AS_OF)
        sizes.append(refresh.warehouse.stat().st_size)
    assert max(sizes) <= 2 * fresh, sizes
    assert max(sizes[3:]) <= max(sizes[:3]), f"still growing: {sizes}"
    (last,) = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")
    assert last["refresh_scope"].startswith("incremental: ")


def test_a_working_copy_with_more_than_half_its_blocks_free_is_published_compacted(inboxes, tmp_path, monkeypatch):
    _, inbox, _ = inboxes
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox, as_of=FIRST_AS_OF)
    fresh = refresh.warehouse.stat().st_size
    record_refresh = resources.record_refresh

    def after_a_large_table_was_dropped(con, **details):
        # Some 40 MB written and freed in the working copy, as a run that replaced large tables would.
        con.execute("create table main.scratch as select range as n, md5(range::varchar) as m from range(1000000)")
        con.execute("checkpoint")
        con.execute("drop table main.scratch")
        record_refresh(con, **details)

    monkeypatch.setattr(resources, "record_refresh", after_a_large_table_was_dropped)
    refresh.ok(inbox, as_of=FIRST_AS_OF)
    (last,) = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")
    assert last["refresh_scope"].startswith("incremental: ")
    assert refresh.warehouse.stat().st_size <= 1.2 * fresh


def test_rejected_rows_of_no_patient_are_kept_once_whether_or_not_an_increment_recomputes_them(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(GOLDEN / "basic" / "inbox", inbox)
    # A clinic row without its id (read whole with the clinics, in every refresh) and a score without a patient.
    (inbox / "clinics.csv").write_text("clinic_id,clinic_name,timezone\naustin,Austin,America/Chicago\n,Nameless,\n")
    assessments = inbox / "assessments.csv"
    with open(assessments, "a") as handle:
        handle.write(",phq9,2026-01-09,12\n")
    incremental = Refresh(tmp_path / "incremental")
    incremental.ok(inbox)
    rejected = "select record_type, patient_id, reason from quarantine.rejected_rows order by record_type, row_number"
    for new_row in ("P1,phq9,2026-01-20,30\n", " ,phq9,2026-01-21,11\n"):  # P1 alone in scope; then no patient
        with open(assessments, "a") as handle:
            handle.write(new_row)
        incremental.ok(inbox)
        (last,) = incremental.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")
        assert last["refresh_scope"] == "incremental: 1 patient recomputed"
        full = Refresh(tmp_path / f"full{len(new_row)}")
        full.ok(inbox, refresh_mode="full")
        assert_same_warehouse(incremental.warehouse, full.warehouse)
    assert incremental.rows(rejected) == [
        {"record_type": "assessment", "patient_id": None, "reason": "missing_field"},
        {"record_type": "assessment", "patient_id": "P1", "reason": "score_out_of_range"},
        {"record_type": "assessment", "patient_id": None, "reason": "missing_field"},
        {"record_type": "clinic", "patient_id": None, "reason": "missing_field"},
    ]
