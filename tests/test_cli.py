"""The infusion-outcomes command as an operator uses it."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipelines.cli import main, run
from tests.conftest import GOLDEN


@pytest.mark.parametrize("command", [[], ["generate"], ["refresh"], ["demo"]])
def test_every_command_explains_itself(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output and len(result.output.splitlines()) > 4


def test_the_command_exits_with_the_status_of_main_and_freezes_what_is_left(tmp_path):
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as success:
            run(["--help"])
        assert success.value.code == 0 and gc.get_freeze_count() > 0
        with pytest.raises(SystemExit) as failure:
            run(["refresh", "--inbox", str(tmp_path / "absent")])
        assert failure.value.code == 1
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual


def test_refresh_help_lists_every_clinical_parameter():
    output = CliRunner().invoke(main, ["refresh", "--help"]).output
    for option in (
        "--series-gap-days",
        "--reinduction-gap-days",
        "--induction-target-infusions",
        "--baseline-window-days",
        "--response-window-days",
        "--min-cell-size",
    ):
        assert option in output


def test_generate_is_deterministic_for_a_seed(tmp_path):
    def files(folder):
        CliRunner().invoke(
            main,
            ["generate", "--out", str(folder), "--patients", "300", "--seed", "11", "--end-date", "2026-06-30"],
            catch_exceptions=False,
        )
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_refresh_prints_a_summary_without_any_patient_identifier(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "refresh",
            "--inbox",
            str(GOLDEN / "bad_inputs" / "inbox"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--reports",
            str(tmp_path / "reports"),
            "--as-of",
            "2026-11-01T00:00:00",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "assessments.csv: 52 rows read, 42 accepted, 9 rejected, 1 exact duplicates removed" in completed.stdout
    assert "series outcomes: 13, of which 10 evaluable" in completed.stdout
    for patient in ("P1", "P2", "P4", "P7", "P8", "P9"):
        assert patient not in completed.stdout + completed.stderr


def test_refresh_failure_exits_non_zero_with_one_line(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "refresh",
            "--inbox",
            str(tmp_path / "nowhere"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--reports",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert completed.stderr.strip().splitlines() == [
        f"Error: the inbox {tmp_path / 'nowhere'} is not a folder: create it or give --inbox"
    ]


def test_clinical_parameters_can_be_set_from_the_command_line(tmp_path):
    CliRunner().invoke(
        main,
        [
            "refresh",
            "--inbox",
            str(GOLDEN / "basic" / "inbox"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--reports",
            str(tmp_path / "r"),
            "--series-gap-days",
            "60",
        ],
        catch_exceptions=False,
    )
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        # P4's three series (gaps of 32 and 42 days) become one.
        assert con.execute("select count(*) from marts.treatment_series where patient_id = 'P4'").fetchall()[0][0] == 1


def test_refresh_timings_name_every_step_with_its_seconds(tmp_path):
    timings = tmp_path / "timings.json"
    result = CliRunner().invoke(
        main,
        [
            "refresh",
            "--inbox",
            str(GOLDEN / "basic" / "inbox"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--reports",
            str(tmp_path / "r"),
            "--as-of",
            "2026-11-01T00:00:00",
            "--timings",
            str(timings),
        ],
    )
    assert result.exit_code == 0, result.output
    seconds = json.loads(timings.read_text())
    assert {"raw__sources", "outcome_tables", "reports__dashboard", "published_warehouse"} <= seconds.keys()
    assert all(value >= 0 for value in seconds.values())
    assert list(seconds.values()) == sorted(seconds.values(), reverse=True)


def test_the_readme_lists_every_command():
    import re
    from pathlib import Path

    from pipelines.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z ]+)` \|", readme, flags=re.M))
    commands = {
        f"{name} {sub}" if hasattr(command, "commands") else name
        for name, command in main.commands.items()
        for sub in (getattr(command, "commands", None) or [None])
    }
    assert commands == {"demo", "docs", "export", "generate", "refresh", "shell", "sources check", "sql"}
    assert commands <= listed


def golden_refresh_reading_its_output(tmp_path) -> subprocess.Popen:
    """Start a refresh of the basic golden inbox into tmp_path, its output read through pipes as it comes."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "refresh", "--inbox", str(GOLDEN / "basic" / "inbox"),
         "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path / "reports"),
         "--as-of", "2026-11-01T00:00:00"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_refresh_prints_the_mode_first_then_each_step_as_it_runs_and_the_total_time_last(tmp_path):
    import time

    process = golden_refresh_reading_its_output(tmp_path)
    lines, step_line_seen_while_running = [], False
    for line in process.stdout:
        lines.append((time.monotonic(), line.rstrip("\n")))
        if line.startswith("[") and process.poll() is None:
            step_line_seen_while_running = True
    assert process.wait() == 0, process.stderr.read()
    text = [line for _, line in lines]
    assert text[0] == "mode: full (nothing is published yet)"
    assert step_line_seen_while_running, "step lines arrive while the refresh still runs"
    steps = [line for line in text if line.startswith("[")]
    assert any(" marts.series_outcomes done in " in line for line in steps)
    assert any(line.endswith(" published_warehouse ...") for line in steps)
    finished = [line for line in steps if " done in " in line]
    assert finished[0].endswith(" s (1 step done)") and finished[1].endswith(" s (2 steps done)"), finished[:2]
    assert re.fullmatch(r"refresh finished in \d+\.\d s", text[-1])
    # The first step line came well before the last line: the output streams, it is not printed at the end.
    first_step = next(moment for moment, line in lines if line.startswith("["))
    assert lines[-1][0] - first_step > 0.5


def test_a_refresh_whose_reader_leaves_after_the_first_line_still_publishes(tmp_path):
    """refresh | head -1: the reader closes the pipe while steps still run. The refresh carries on and publishes
    (before, the step printing the next line failed, and the next refresh read every file again)."""
    import duckdb

    process = golden_refresh_reading_its_output(tmp_path)
    assert process.stdout.readline() == "mode: full (nothing is published yet)\n"
    process.stdout.close()
    assert process.wait() == 0, process.stderr.read()
    assert process.stderr.read() == ""
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from meta.refreshes").fetchall() == [(1,)]


def test_a_quiet_refresh_prints_nothing_when_it_succeeds(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "refresh", "--quiet", "--inbox", str(GOLDEN / "basic" / "inbox"),
         "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path / "reports"),
         "--as-of", "2026-11-01T00:00:00"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--inbox", "{tmp}/missing"], "Error: the inbox {tmp}/missing is not a folder: create it or give --inbox"),
        (["--warehouse", "{tmp}/afile/w.duckdb"], "Error: the warehouse folder {tmp}/afile lies under {tmp}/afile"),
        (["--reports", "{tmp}/afile/reports"], "Error: the reports folder {tmp}/afile lies under {tmp}/afile"),
    ],
)
def test_preflight_names_the_path_and_what_to_do_before_any_work(tmp_path, arguments, said):
    (tmp_path / "afile").write_text("a file where a folder should be")
    defaults = {"--inbox": str(GOLDEN / "basic" / "inbox"), "--warehouse": str(tmp_path / "w" / "w.duckdb"),
                "--reports": str(tmp_path / "reports")}  # fmt: skip
    given = dict(zip(arguments[::2], [a.format(tmp=tmp_path) for a in arguments[1::2]], strict=True))
    options = [part for name, value in {**defaults, **given}.items() for part in (name, value)]
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "refresh", *options], capture_output=True, text=True
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith(said.format(tmp=tmp_path)), completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1 and completed.stdout == ""
    assert not (tmp_path / "w" / "w.duckdb").exists()


GAP_DAYS = "series_gap_days (OUTCOMES_SERIES_GAP_DAYS)"


@pytest.mark.parametrize(
    ("arguments", "environment", "said"),
    [
        (["--as-of", "yesterday"], {}, "as_of (OUTCOMES_AS_OF) = 'yesterday': Input should be"),
        (["--series-gap-days", "-3"], {}, f"{GAP_DAYS} = -3: Input should be greater than or equal to 0"),
        ([], {"OUTCOMES_SERIES_GAP_DAYS": "abc"}, f"{GAP_DAYS} = 'abc': Input should be a valid integer"),
        (["--min-cell-size", "0"], {}, "min_cell_size 0 would publish counts of single patients"),
    ],
)
def test_a_bad_setting_is_named_with_its_value_and_what_is_allowed_in_one_line(tmp_path, arguments, environment, said):
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "refresh", "--inbox", str(GOLDEN / "basic" / "inbox"),
         "--warehouse", str(tmp_path / "w.duckdb"), *arguments],
        capture_output=True, text=True, env={**os.environ, **environment},
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"Error: invalid setting: {said}"), completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1 and "Traceback" not in completed.stderr


def test_on_a_terminal_the_running_steps_show_live_below_the_finished_ones(tmp_path):
    import os
    import pty

    # A pseudo-terminal, as an operator's shell gives: the refresh sees a TTY and shows a live status line.
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "refresh", "--inbox", str(GOLDEN / "basic" / "inbox"),
         "--warehouse", str(tmp_path / "w.duckdb"), "--reports", str(tmp_path / "reports"),
         "--as-of", "2026-11-01T00:00:00"],
        stdout=child_fd, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip
    os.close(child_fd)
    output = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait() == 0, process.stderr.read()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert "running: " in text and " steps done" in text  # the live status
    assert re.search(r"\] marts\.series_outcomes done in \d+\.\d s", text)  # the finished steps, as lines
    assert " ...\r\n" not in text and not re.search(r"\] marts\.series_outcomes \.\.\.", text)  # no start lines
    assert re.search(r"refresh finished in \d+\.\d s", text)
