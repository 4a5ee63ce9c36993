"""make bench: a full refresh at 10,000, 100,000 and 1,000,000 patients against the speed of DuckDB alone.

For each size it prints input rows, wall seconds, rows per second, peak resident
memory, and two references timed in the same run on the same inbox: the floor,
the seconds DuckDB alone takes to load the three CSV files into tables and do
one sort-and-window pass over the assessments; and, where the shared peer
script is found (../shared/tools/peer/peer_outcomes.py beside the project, or
--peer PATH), an expert's one-script DuckDB computation of the series and their
outcomes, with the ratio refresh / peer (each timed as a whole process). Then
it appends a day of rows for 0.1% of the patients (--changed) and times the
incremental refresh that follows, against the full one: three times at every
size, each from a copy of what the full refresh left. Sizes up to 100,000
patients run the full refresh and the references three times too; medians are
reported (single timings of a few seconds move by a third). The report steps'
seconds show that rendering reads aggregates only. Inboxes are generated once
and cached in benchmarks/cache/ (--fresh times the generator again). Results
are written to benchmarks/results/<time>.json with the machine's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
END_DATE = "2026-06-30"  # fixed, so that cached inboxes stay valid
AS_OF = f"{END_DATE}T00:00:00"
NEW_DAY = END_DATE  # rows of the day the first refresh treated as "now", sent the next night
NEXT_AS_OF = "2026-07-01T00:00:00"
FILES = ("patients.csv", "infusions.csv", "assessments.csv")
# The expert's DuckDB script the refresh is compared with, when the shared material sits beside the project.
DEFAULT_PEER = ROOT.parent / "shared" / "tools" / "peer" / "peer_outcomes.py"

FLOOR = """
import sys, time, duckdb
inbox, database = sys.argv[1], sys.argv[2]
started = time.perf_counter()
con = duckdb.connect(database)
con.execute("set enable_progress_bar = false")
for name in ("patients", "infusions", "assessments"):
    con.execute(f"create table {name} as select * from read_csv('{inbox}/{name}.csv', header = true)")
con.execute("create table windowed as select *, lag(score) over "
            "(partition by patient_id, instrument order by administered_at) as previous_score from assessments")
con.close()
print(time.perf_counter() - started)
"""


def run(command: list[str]) -> tuple[float, int, str]:
    """Return wall seconds, peak resident memory (bytes) and stdout of a command and its children."""
    # Each run starts on a quiet disk: the gigabytes the run before wrote (a warehouse, the peer's database) are
    # otherwise still being flushed while this one works, and a nightly refresh does not follow such a write.
    # At a million patients that writeback made the statistics step two to three times slower.
    os.sync()
    started = time.perf_counter()
    # The board pack's PDFs take Chromium's time, not the pipeline's, whatever the size: left out of the timings.
    environment = {**os.environ, "OUTCOMES_BOARD_PACK": "false"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, stdout


def inbox_for(patients: int, clinics: int, fresh: bool = False) -> tuple[Path, float | None]:
    """Return the cached inbox of a size, generating it when missing or fresh (and the seconds that took)."""
    folder = CACHE / f"{patients}-patients-{clinics}-clinics-seed-1-to-{END_DATE}"
    if not fresh and all((folder / name).is_file() for name in FILES):
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    seconds, _, _ = run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "generate",
            "--out",
            str(folder),
            "--patients",
            str(patients),
            "--clinics",
            str(clinics),
            "--seed",
            "1",
            "--end-date",
            END_DATE,
        ]
    )
    return folder, seconds


def data_rows(folder: Path) -> int:
    """Return the data rows of the three files (lines minus headers; the generator writes no quoted newlines)."""
    total = 0
    for name in FILES:
        with open(folder / name, "rb") as handle:
            total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b"")) - 1
    return total


def append_new_day(inbox: Path, share: float) -> int:
    """Append a day of rows to an inbox: an infusion and a PHQ-9 for every 1/share-th patient; return how many."""
    import polars as pl

    patients = pl.read_csv(inbox / "patients.csv", columns=["patient_id"], infer_schema=False)
    chosen = patients.gather_every(round(1 / share))["patient_id"]
    day = f"{NEW_DAY}T10:00:00"
    infusions = pl.read_csv(inbox / "infusions.csv", infer_schema=False, n_rows=1)
    template = {column: infusions[column][0] for column in infusions.columns}
    new_infusions = pl.DataFrame(
        {**{c: [v] * len(chosen) for c, v in template.items()}, "patient_id": chosen, "infused_at": [day] * len(chosen)}
    ).select(infusions.columns)
    header = pl.read_csv(inbox / "assessments.csv", infer_schema=False, n_rows=1).columns
    new_scores = pl.DataFrame(
        {
            "patient_id": chosen,
            "instrument": ["phq9"] * len(chosen),
            "administered_at": [f"{NEW_DAY}T09:30:00"] * len(chosen),
            "score": ["6"] * len(chosen),
        }
    )
    new_scores = new_scores.with_columns(
        *[pl.lit(None, pl.String).alias(c) for c in header if c not in new_scores.columns]
    )
    for name, frame in (("infusions.csv", new_infusions), ("assessments.csv", new_scores.select(header))):
        with open(inbox / name, "a") as handle:
            frame.write_csv(handle, include_header=False)
    return len(chosen)


REPORT_STEPS = ("reports__dashboard", "reports__refresh_summary", "reports__patient_pages")


def steps_of(timings: Path) -> tuple[float, dict[str, float]]:
    """Return the seconds the report steps took and the slowest steps, from refresh --timings."""
    seconds = json.loads(timings.read_text())
    return round(sum(seconds.get(step, 0.0) for step in REPORT_STEPS), 2), dict(list(seconds.items())[:8])


def repeats_for(patients: int) -> int:
    """Small sizes run in seconds, where another process on the machine moves a single timing by a third."""
    return 3 if patients <= 100_000 else 1


# The nightly increment is the figure the targets are about, and takes seconds at every size: always repeated.
INCREMENT_REPEATS = 3


def refresh_outputs(folder: Path) -> list[Path]:
    """Return what a refresh wrote in folder: the published links, the generations, the raw store and its rows."""
    return [*folder.glob("outcomes.duckdb*"), *folder.glob("reports*")]


def remove_refresh_outputs(folder: Path) -> None:
    for path in refresh_outputs(folder):
        # The published paths are links into the generations folder: a link is unlinked, a folder removed.
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def copy_refresh_outputs(source: Path, target: Path) -> None:
    """Copy a refresh's outputs, its links as links, so that a refresh in target starts where source stood."""
    target.mkdir(exist_ok=True)
    for path in refresh_outputs(source):
        copy = target / path.name
        if path.is_symlink():
            copy.symlink_to(os.readlink(path))
        elif path.is_dir():
            shutil.copytree(path, copy, symlinks=True)
        else:
            shutil.copy2(path, copy)


def measure(patients: int, changed_share: float, fresh: bool, peer: Path | None) -> dict:
    clinics = max(4, patients // 50_000)
    cached, generated_seconds = inbox_for(patients, clinics, fresh)
    rows = data_rows(cached)
    full_runs, floor_runs, peer_runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        inbox = Path(scratch) / "inbox"
        shutil.copytree(cached, inbox)  # the cached inbox stays as generated; this copy gains a day
        refresh = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "refresh",
            "--inbox",
            str(inbox),
            "--warehouse",
            f"{scratch}/outcomes.duckdb",
            "--reports",
            f"{scratch}/reports",
        ]
        for _ in range(repeats_for(patients)):  # each a full refresh from nothing, then the floor
            remove_refresh_outputs(Path(scratch))
            for stale in Path(scratch).glob("floor.duckdb*"):
                stale.unlink()
            seconds, peak_bytes, _ = run([*refresh, "--as-of", AS_OF, "--timings", f"{scratch}/full.json"])
            full_runs.append(seconds)
            _, floor_peak, floor_out = run([sys.executable, "-c", FLOOR, str(inbox), f"{scratch}/floor.duckdb"])
            floor_runs.append(float(floor_out.strip().splitlines()[-1]))
            if peer is not None:  # on the same inbox, as a whole process like the refresh
                peer_seconds, peer_peak, _ = run(
                    [sys.executable, str(peer), str(inbox), f"{scratch}/peer", "--threads", str(os.cpu_count())]
                )
                peer_runs.append(peer_seconds)
        report_seconds, slowest_steps = steps_of(Path(scratch) / "full.json")
        changed = append_new_day(inbox, changed_share)
        after_full = Path(scratch) / "after-full"
        copy_refresh_outputs(Path(scratch), after_full)
        incremental_runs, incremental_peak = [], 0
        for _ in range(INCREMENT_REPEATS):  # each from what the full refresh left
            remove_refresh_outputs(Path(scratch))
            copy_refresh_outputs(after_full, Path(scratch))
            seconds, peak_bytes_of_run, incremental_out = run(
                [*refresh, "--as-of", NEXT_AS_OF, "--timings", f"{scratch}/incremental.json"]
            )
            incremental_runs.append(seconds)
            incremental_peak = max(incremental_peak, peak_bytes_of_run)
        incremental_seconds = statistics.median(incremental_runs)
        _, incremental_slowest_steps = steps_of(Path(scratch) / "incremental.json")
        scope_line = next(line for line in incremental_out.splitlines() if line.startswith("refresh: "))
        assert scope_line.startswith("refresh: incremental"), scope_line
    refresh_seconds, floor_seconds = statistics.median(full_runs), statistics.median(floor_runs)
    peer_seconds = statistics.median(peer_runs) if peer_runs else None
    return {
        "patients": patients,
        "clinics": clinics,
        "input_rows": rows,
        "generator_seconds": generated_seconds,
        "refresh_seconds": round(refresh_seconds, 2),
        "refresh_runs_seconds": [round(x, 2) for x in full_runs],
        "floor_runs_seconds": [round(x, 2) for x in floor_runs],
        "rows_per_second": round(rows / refresh_seconds),
        "peak_memory_gb": round(peak_bytes / 1e9, 2),
        "floor_seconds": round(floor_seconds, 2),
        "floor_peak_memory_gb": round(floor_peak / 1e9, 2),
        "refresh_over_floor": round(refresh_seconds / floor_seconds, 2),
        "peer_runs_seconds": [round(x, 2) for x in peer_runs],
        "peer_seconds": None if peer_seconds is None else round(peer_seconds, 2),
        "peer_peak_memory_gb": None if peer_seconds is None else round(peer_peak / 1e9, 2),
        "refresh_over_peer": None if peer_seconds is None else round(refresh_seconds / peer_seconds, 2),
        "report_seconds": report_seconds,
        "slowest_steps": slowest_steps,
        "patients_changed": changed,
        "incremental_seconds": round(incremental_seconds, 2),
        "incremental_runs_seconds": [round(x, 2) for x in incremental_runs],
        "incremental_peak_memory_gb": round(incremental_peak / 1e9, 2),
        "incremental_over_full": round(incremental_seconds / refresh_seconds, 3),
        "incremental_summary": scope_line,
        "incremental_slowest_steps": incremental_slowest_steps,
    }


def machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": version("duckdb"),
        "polars": version("polars"),
        "dagster": version("dagster"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="patients per run, comma-separated")
    parser.add_argument(
        "--changed",
        type=float,
        default=0.001,
        help="share of patients with a new day of rows for the incremental refresh",
    )
    parser.add_argument("--fresh", action="store_true", help="generate the inboxes again (and time the generator)")
    parser.add_argument(
        "--peer",
        type=Path,
        default=DEFAULT_PEER,
        help="the expert's DuckDB script to time beside the refresh (skipped when the file is absent)",
    )
    arguments = parser.parse_args()
    peer = arguments.peer if arguments.peer.is_file() else None
    if peer is None:
        print(f"peer script {arguments.peer} not found: timing the refresh against the floor only", flush=True)
    sizes = [int(size) for size in arguments.sizes.split(",")]
    CACHE.mkdir(parents=True, exist_ok=True)
    print(
        f"{'patients':>10} {'input rows':>12} {'refresh s':>10} {'rows/s':>10} {'peak GB':>8} "
        f"{'floor s':>8} {'ratio':>6} {'peer s':>7} {'/peer':>6} {'reports s':>9} {'generate s':>10} "
        f"{'changed':>8} {'incr. s':>8} {'incr./full':>10}",
        flush=True,
    )
    results = []
    for patients in sizes:
        result = measure(patients, arguments.changed, arguments.fresh, peer)
        results.append(result)
        generated = "cached" if result["generator_seconds"] is None else f"{result['generator_seconds']:.1f}"
        print(
            f"{patients:>10,} {result['input_rows']:>12,} {result['refresh_seconds']:>10.1f} "
            f"{result['rows_per_second']:>10,} {result['peak_memory_gb']:>8.2f} {result['floor_seconds']:>8.1f} "
            f"{result['refresh_over_floor']:>6.2f} "
            + (
                f"{result['peer_seconds']:>7.1f} {result['refresh_over_peer']:>6.2f} "
                if peer
                else f"{'-':>7} {'-':>6} "
            )
            + f"{result['report_seconds']:>9.2f} {generated:>10} "
            f"{result['patients_changed']:>8,} "
            f"{result['incremental_seconds']:>8.1f} {result['incremental_over_full']:>10.3f}",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps({"measured_at": stamp, "machine": machine(), "results": results}, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
