"""Publication is atomic: a failed run leaves the published warehouse and reports exactly as they were."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.cli import execute_refresh, failure_reason, refresh_instance, settings_from
from pipelines.definitions import REFRESH_JOB, build_definitions
from pipelines.demo.generator import write_inbox as write_demo_inbox
from pipelines.publication import Publication, clone_file
from pipelines.resources import Warehouse
from tests.conftest import GOLDEN, Refresh, write_inbox


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
print(con.execute("select count(*) from quarantine.rejected_rows").fetchall()[0][0], flush=True)
sys.stdin.readline()  # hold the warehouse open until told
print(con.execute("select count(*) from quarantine.rejected_rows").fetchall()[0][0], flush=True)
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
        assert con.execute("select count(*) from quarantine.rejected_rows").fetchall()[0][0] == 16


def test_a_second_writer_is_refused_with_a_clear_message(refresh):
    holder = Warehouse(path=str(refresh.warehouse))
    with dg.build_resources({"warehouse": holder}):
        result = refresh.run(GOLDEN / "basic" / "inbox")
    assert not result.success
    assert failure_reason(result).startswith(f"another refresh is writing {refresh.warehouse}")


def readers_view(warehouse: Path, reports: Path) -> tuple[str, str, dict[str, str]]:
    """What a reader who opens the warehouse path and the reports folder now sees: the warehouse's sha256,
    what it holds (a refresh of the same inbox writes the same rows into a file that differs in its
    refresh record), and the sha256 of every report file."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select count(*), (select count(*) from marts.series_outcomes), (select max(as_of) from meta.refreshes)"
            " from quarantine.rejected_rows"
        ).fetchall()[0]
    reports_seen = folder_digest(reports)
    # The summary's mode line counts the patients a run recomputed, which can differ between two copies of
    # one published state (file times): compared without it.
    summary = re.sub(r" · refresh [^<]*", "", (reports / "operator" / "refresh_summary.html").read_text())
    reports_seen["operator/refresh_summary.html"] = hashlib.sha256(summary.encode()).hexdigest()
    return digest(warehouse), repr(rows), reports_seen


def same_publication(view, other) -> bool:
    """True when two views show the same published rows and reports (their files may differ in refresh time)."""
    return view[1:] == other[1:]


# A refresh in its own process that kills itself (SIGKILL) just before the Nth file-system change its
# publication makes: every instant between two steps of a publication is one of these.
KILLED_REFRESH = """
import os, shutil, signal, sys
import pipelines.publication as publication
from pipelines.cli import execute_refresh, settings_from

inbox, warehouse, reports, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
changes = 0

def killing(function):
    def changed(*arguments, **options):
        global changes
        changes += 1
        if changes == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*arguments, **options)
    return changed

for module, name in [(os, "replace"), (os, "rename"), (os, "symlink"), (os, "link"), (os, "mkdir"),
                     (os, "unlink"), (shutil, "copytree"), (shutil, "rmtree")]:
    setattr(publication.os if module is os else publication.shutil, name, killing(getattr(module, name)))
settings = settings_from(inbox=inbox, warehouse=warehouse, reports=reports, as_of="2026-11-01T00:00:00")
result = execute_refresh(settings)
print("published" if result.success else "failed", changes)
"""


def test_a_refresh_killed_at_any_step_of_its_publication_shows_readers_all_old_or_all_new(tmp_path):
    template = tmp_path / "template" / "out"
    old = Refresh(template)
    old.ok(GOLDEN / "basic" / "inbox")
    old_view = readers_view(old.warehouse, old.reports)
    # What a refresh of the new inbox publishes over the old one when nothing stops it.
    shutil.copytree(template, tmp_path / "expected" / "out", symlinks=True)
    expected_new = Refresh(tmp_path / "expected" / "out")
    expected_new.ok(GOLDEN / "bad_inputs" / "inbox")
    new_view = readers_view(expected_new.warehouse, expected_new.reports)
    assert not same_publication(old_view, new_view)
    kill_at, seen = 1, set()
    while True:
        root = tmp_path / f"kill-{kill_at}" / "out"
        shutil.copytree(template, root, symlinks=True)
        run = Refresh(root)
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                KILLED_REFRESH,
                str(GOLDEN / "bad_inputs" / "inbox"),
                str(run.warehouse),
                str(run.reports),
                str(kill_at),
            ],
            capture_output=True,
            text=True,
        )
        view = readers_view(run.warehouse, run.reports)
        if view == old_view:
            seen.add("old")
        else:  # a new warehouse file: it must come with the new reports, never the old ones
            assert same_publication(view, new_view), f"killed at change {kill_at}: readers see a mix"
            seen.add("new")
        if completed.returncode == 0:  # the publication made fewer changes than kill_at: it ran to the end
            assert completed.stdout.split()[0] == "published", completed.stderr[-2000:]
            break
        assert completed.returncode == -9, completed.stderr[-2000:]
        kill_at += 1
        assert kill_at < 40, "a publication makes a handful of file-system changes"
    assert seen == {"old", "new"} and kill_at > 5, "the kills reached every step of the publication"
    # The next refresh after a kill cleans up what the killed one left and publishes.
    for folder in (tmp_path / "kill-2", tmp_path / f"kill-{kill_at - 1}"):
        survivor = Refresh(folder / "out")
        survivor.ok(GOLDEN / "bad_inputs" / "inbox")
        assert same_publication(readers_view(survivor.warehouse, survivor.reports), new_view)
        assert not list(survivor.root.rglob("*.partial")), folder.name
        assert not list(survivor.root.rglob(".*.link-*")), folder.name
        generations = survivor.root / "warehouse" / "outcomes.duckdb.generations"
        assert len(list(generations.iterdir())) <= 2, "the current generation and the one before it"


@pytest.fixture
def small_disk(tmp_path):
    """A 160 MB file system of its own (tmpfs; needs root, as CI has): a disk the test can fill."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_free: int) -> Path:
    """Fill a file system up to leave_free bytes with a filler file; return it."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as handle:
        handle.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = max(free - leave_free, 0)
        while remaining > 0:
            handle.write(chunk[: min(len(chunk), remaining)])
            remaining -= min(len(chunk), remaining)
    return filler


def test_a_full_disk_at_any_point_of_a_refresh_leaves_readers_all_old_and_the_next_refresh_publishes(small_disk):
    run = Refresh(small_disk / "out")
    run.ok(GOLDEN / "basic" / "inbox")
    old_view = readers_view(run.warehouse, run.reports)
    published_bytes = sum(p.stat().st_size for p in run.root.rglob("*") if p.is_file() and not p.is_symlink())
    outcomes = []
    for share in (0.02, 0.1, 0.3, 0.6, 0.9, 1.2, 1.6, 2.5):
        filler = fill(small_disk, int(published_bytes * share))
        result = run.run(GOLDEN / "bad_inputs" / "inbox")
        view = readers_view(run.warehouse, run.reports)
        if result.success:
            outcomes.append("published")
        else:
            outcomes.append(failure_reason(result))
            assert view == old_view, (
                f"with {share:.0%} of a publication free, a failed refresh changed what readers see"
            )
        filler.unlink()
        if result.success:
            break
    assert any("No space left on device" in outcome for outcome in outcomes), outcomes
    run.ok(GOLDEN / "bad_inputs" / "inbox")
    assert not list(run.root.rglob("*.partial"))
    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from quarantine.rejected_rows").fetchall()[0][0] == 16


def truncate(path: Path, keep: float) -> None:
    """Cut a file to a share of its size (0: empty), as a crash or a full disk outside this program would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


@pytest.mark.parametrize(
    ("damaged", "keep", "mode_line"),
    [
        ("outcomes.duckdb", 0.5, "full: the published warehouse cannot be read"),
        ("outcomes.duckdb", 0.0, "full: the published warehouse cannot be read"),
        ("outcomes.duckdb.raw", 0.3, "full: the kept raw tables cannot be read"),
    ],
)
def test_a_damaged_published_warehouse_or_raw_store_is_named_in_one_line_and_rebuilt(refresh, damaged, keep, mode_line):
    refresh.ok(GOLDEN / "basic" / "inbox")
    truncate((refresh.warehouse.parent / damaged).resolve(), keep)
    refresh.ok(GOLDEN / "bad_inputs" / "inbox")
    (last,) = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")
    assert last["refresh_scope"].startswith(mode_line), last
    assert "\n" not in last["refresh_scope"] and len(last["refresh_scope"]) < 300
    assert refresh.rows("select count(*) as n from quarantine.rejected_rows") == [{"n": 16}]


def test_a_full_refresh_from_the_command_line_starts_empty_whatever_was_left_behind(tmp_path):
    refresh = Refresh(tmp_path / "out")
    refresh.ok(GOLDEN / "basic" / "inbox")
    leftover = refresh.warehouse.with_name("outcomes.duckdb.building")
    leftover.write_bytes(b"left by a refresh that was stopped" * 100)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "refresh",
            "--full",
            "--inbox",
            str(GOLDEN / "bad_inputs" / "inbox"),
            "--warehouse",
            str(refresh.warehouse),
            "--reports",
            str(refresh.reports),
            "--as-of",
            "2026-11-01T00:00:00",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("mode: full (a full refresh was asked for)")
    assert "\nrefresh: full: a full refresh was asked for\n" in completed.stdout
    assert refresh.rows("select count(*) as n from quarantine.rejected_rows") == [{"n": 16}]


def test_files_hard_linked_in_the_reports_are_published_as_one_file_that_later_writes_leave_alone(tmp_path):
    write_demo_inbox(tmp_path / "inbox", patients=400, clinics=2, seed=5, end_date=date(2026, 6, 30), years=1.0)
    refresh = Refresh(tmp_path / "out")
    refresh.ok(tmp_path / "inbox", as_of="2026-06-30T00:00:00")
    libraries = sorted(refresh.reports.resolve().rglob("plotly.min.js"))
    assert len(libraries) >= 3, "the network's folder and each clinic's"
    assert len({library.stat().st_ino for library in libraries}) == 1, "one file, linked into every folder"
    working = tmp_path / "working"
    (working / "a").mkdir(parents=True)
    (working / "b").mkdir()
    (working / "a" / "library.js").write_text("library")
    os.link(working / "a" / "library.js", working / "b" / "library.js")
    (working / "b" / "page.html").write_text("page")
    warehouse = tmp_path / "outcomes.duckdb.building"
    warehouse.write_bytes(b"warehouse")
    generation = Publication(tmp_path / "own" / "outcomes.duckdb", tmp_path / "own" / "reports").publish(
        warehouse, working
    )
    first, second = generation / "reports" / "a" / "library.js", generation / "reports" / "b" / "library.js"
    assert first.stat().st_ino == second.stat().st_ino
    assert first.stat().st_ino != (working / "a" / "library.js").stat().st_ino, "never linked to the working copy"
    (working / "a" / "library.js").write_text("the next run's")  # written in place, as a page is
    assert second.read_text() == "library"
    assert (generation / "reports" / "b" / "page.html").read_text() == "page"
    assert (generation / "outcomes.duckdb").read_bytes() == b"warehouse"


@pytest.mark.parametrize("can_clone", [True, False], ids=["as the file system does", "cloning refused"])
def test_a_cloned_warehouse_equals_its_source_and_writing_it_leaves_the_source_alone(tmp_path, monkeypatch, can_clone):
    source, target = tmp_path / "published.duckdb", tmp_path / "working.duckdb"
    content = os.urandom(3 << 20)
    source.write_bytes(content)
    target.write_bytes(b"left by a stopped run, longer than nothing")
    if not can_clone:  # ext4, tmpfs or two file systems: the clone is refused and the bytes are copied

        def refused(*_):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

        monkeypatch.setattr("pipelines.publication.fcntl.ioctl", refused)
    clone_file(source, target)
    assert target.read_bytes() == content
    with open(target, "r+b") as handle:
        handle.write(b"changed")
    assert source.read_bytes() == content


def nightly_inbox(tmp_path: Path) -> Path:
    """A copy of the basic golden inbox, for a refresh and then another with a score added: incremental."""
    inbox = tmp_path / "inbox"
    shutil.copytree(GOLDEN / "basic" / "inbox", inbox)
    return inbox


def add_a_score(inbox: Path) -> None:
    assessments = inbox / "assessments.csv"
    header = assessments.read_text().splitlines()[0].split(",")
    row = {"patient_id": "P1", "instrument": "phq9", "administered_at": "2026-10-30T09:00:00", "score": "9"}
    with open(assessments, "a") as handle:
        handle.write(",".join(row.get(column, "") for column in header) + "\n")


def test_an_incremental_refresh_reads_the_inbox_while_the_published_warehouse_is_copied(tmp_path, monkeypatch):
    inbox, refresh = nightly_inbox(tmp_path), Refresh(tmp_path / "out")
    refresh.ok(inbox)
    add_a_score(inbox)
    raw_steps_done, united, copied = threading.Event(), [], []

    def slow_copy(source, target):
        # As a large warehouse on a file system that cannot clone: the copy ends once the raw steps have read
        # the inbox (or after 30 s, if they wait for it, as they would on the warehouse's connection).
        raw_steps_done.wait(timeout=30)
        time.sleep(0.3)  # and then some: the first step that opens the warehouse waits, and says so
        clone_file(source, target)
        copied.append(time.monotonic())

    def replace_table(con, table, frame):  # the last thing each raw step that unites a record type does
        assets_ingest_replace_table(con, table, frame)
        united.append(time.monotonic())
        if len(united) == 4:
            raw_steps_done.set()

    import assets.ingest

    assets_ingest_replace_table = assets.ingest.replace_table
    monkeypatch.setattr("pipelines.resources.clone_file", slow_copy)
    monkeypatch.setattr("assets.ingest.replace_table", replace_table)
    instance = refresh_instance()
    settings = settings_from(inbox=inbox, warehouse=refresh.warehouse, reports=refresh.reports, as_of="2026-11-01")
    result = execute_refresh(settings, instance=instance)

    assert result.success, failure_reason(result)
    assert len(united) == 4 and len(copied) == 1
    assert max(united) < copied[0], "the raw steps ran while the working copy was being made"
    waits = [
        (record.step_key, record.user_message)
        for record in instance.all_logs(result.run_id)
        if "for the working copy" in (record.user_message or "")
    ]
    assert len(waits) == 1 and re.fullmatch(
        rf"waited \d+\.\d s for the working copy of {re.escape(str(refresh.warehouse))} to be made", waits[0][1]
    ), waits
    last = refresh.rows("select refresh_scope from meta.refreshes order by refreshed_at desc limit 1")[0]
    assert last["refresh_scope"] == "incremental: 1 patient recomputed"
    (score,) = refresh.rows("select score from staging.assessments where administered_at = '2026-10-30 09:00:00'")
    assert score == {"score": 9}


def test_a_working_copy_that_cannot_be_made_fails_the_refresh_naming_why_and_readers_keep_what_was_published(
    tmp_path, monkeypatch
):
    inbox, refresh = nightly_inbox(tmp_path), Refresh(tmp_path / "out")
    refresh.ok(inbox)
    published = readers_view(refresh.warehouse, refresh.reports)
    add_a_score(inbox)

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr("pipelines.resources.clone_file", full_disk)
    result = refresh.run(inbox)

    assert not result.success
    assert "No space left on device" in failure_reason(result)
    assert readers_view(refresh.warehouse, refresh.reports) == published
    monkeypatch.undo()
    refresh.ok(inbox)  # the next night publishes
    assert refresh.rows("select count(*) as n from staging.assessments where score = 9 and patient_id = 'P1'")


def test_a_tables_materialization_reports_its_rows_and_a_views_is_not_computed_to_count_them(refresh):
    result = refresh.ok(GOLDEN / "basic" / "inbox")
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    (series,) = refresh.rows("select count(*) as n from marts.series_outcomes")
    assert metadata["marts/series_outcomes"]["row_count"].value == series["n"] > 0
    # marts.assessment_outcomes is a view: counting it would run its join over every follow-up.
    assert "row_count" not in metadata["marts/assessment_outcomes"]
    assert "row_count" not in metadata["staging/assessments"]
