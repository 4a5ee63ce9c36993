"""What the operator sees while a refresh runs: each step's start and end as they happen, and what to fix first.

A Dagster logger writes one timestamped line as each step ends (and, in a log,
as each starts); on a terminal a live line below them shows the steps running
now with their elapsed time (rich's status display), in a log or a pipe only
the plain lines, so that the nightly run's log reads the same. preflight checks
what would make a refresh fail late, before any work, each problem one line
naming the path and what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg
import filelock

STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}
# Working copies beside the published warehouse: a refresh needs room for about this many of it.
WORKING_COPIES = 3


def steps_done(count: int) -> str:
    return f"{count} step{'' if count == 1 else 's'} done"


def step_name(step_key: str) -> str:
    """Return a step key as the operator reads it: marts__series_outcomes -> marts.series_outcomes."""
    return step_key.replace("__", ".", 1)


@contextmanager
def carrying_on_unread(stream=None) -> Iterator[None]:
    """Carry on when the reader of the output has gone (refresh | head): the rest of the output goes nowhere.

    The output is for the operator, not part of the work: a closed pipe failed the step printing the line,
    and the next refresh read every file again. The stream is pointed at the null device, so that later lines
    and the interpreter's last flush fail no more.
    """
    try:
        yield
    except BrokenPipeError:
        null_device = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null_device, (stream or sys.stdout).fileno())
        os.close(null_device)  # the stream's descriptor now refers to it; this copy is not needed


class StepLines(logging.Handler):
    """Writes one line as each step starts, succeeds or fails, with its elapsed time; on a terminal, the start
    lines give way to a live status of the steps running."""

    def __init__(self, stream, live: bool | None = None):
        super().__init__(level=logging.DEBUG)
        self.stream = stream
        self.started: dict[str, float] = {}
        self.done = 0
        self.live = stream.isatty() if live is None else live
        self.status = None
        if self.live:
            from rich.console import Console

            self.console = Console(file=stream, highlight=False)
        LIVE_HANDLERS.append(self)

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if event is None or event.event_type_value not in STEP_EVENTS or event.step_key is None:
            return
        name, now = step_name(event.step_key), time.monotonic()
        clock = datetime.now().strftime("%H:%M:%S")
        if event.event_type_value == "STEP_START":
            self.started[event.step_key] = now
            line = None if self.live else f"[{clock}] {name} ..."
        else:
            self.done += 1
            seconds = now - self.started.pop(event.step_key, now)
            outcome = "done" if event.event_type_value == "STEP_SUCCESS" else "FAILED"
            line = f"[{clock}] {name} {outcome} in {seconds:.1f} s ({steps_done(self.done)})"
        if not self.live:
            with carrying_on_unread(self.stream):
                print(line, file=self.stream, flush=True)
            return
        if line:
            self.console.print(line, markup=False)
        self.show_running()

    def show_running(self) -> None:
        """Show the steps running now, the longest running first, below the finished lines."""
        if not self.started:
            self.stop()
            return
        # The start's clock time, not a count of seconds: the status is redrawn between events, not rewritten.
        running = ", ".join(
            f"{step_name(key)} (since {self.clock_at(at)})"
            for key, at in sorted(self.started.items(), key=lambda kv: kv[1])
        )
        text = f"running: {running} - {steps_done(self.done)}"
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    @staticmethod
    def clock_at(moment: float) -> str:
        return datetime.fromtimestamp(time.time() - (time.monotonic() - moment)).strftime("%H:%M:%S")

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


# The handlers of this process, so that the refresh command can stop a live display when the run ends.
LIVE_HANDLERS: list[StepLines] = []


def stop_live_progress() -> None:
    """End every live status display (a failed step may leave one running)."""
    while LIVE_HANDLERS:
        LIVE_HANDLERS.pop().stop()


@dg.logger(description="One line as each step ends, and a live status of the running steps on a terminal.")
def step_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("step_progress", level=logging.DEBUG)
    logger.addHandler(StepLines(sys.stdout))
    return logger


def writable_folder(path: Path) -> Path:
    """Return the nearest existing folder of a path (where it would be created)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def preflight(inbox: Path, warehouse: Path, reports: Path) -> list[str]:
    """Return what would make a refresh fail after its work, each one line naming the path and what to do."""
    problems = []
    if not inbox.is_dir():
        problems.append(f"the inbox {inbox} is not a folder: create it or give --inbox")
    elif not os.access(inbox, os.R_OK | os.X_OK):
        problems.append(f"the inbox {inbox} cannot be read by this user: grant read access")
    for what, path in (("warehouse", warehouse.parent), ("reports", reports.parent)):
        existing = writable_folder(path)
        if not existing.is_dir():
            problems.append(f"the {what} folder {path} lies under {existing}, which is a file: choose another path")
        elif not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"the {what} folder {existing} is not writable by this user: grant write access")
    if problems:
        return problems
    lock = filelock.FileLock(str(warehouse) + ".lock")
    try:
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
        lock.release()
    except filelock.Timeout:
        problems.append(f"another refresh is writing {warehouse} (lock {warehouse}.lock): wait for it to finish")
    except OSError as error:
        problems.append(f"the lock {warehouse}.lock cannot be taken ({error.strerror}): check the folder's permissions")
    published = warehouse.stat().st_size if warehouse.exists() else 0
    free = shutil.disk_usage(writable_folder(warehouse.parent)).free
    if published and free < WORKING_COPIES * published:
        problems.append(
            f"{warehouse.parent} has {free / 1e9:.1f} GB free, and a refresh needs about {WORKING_COPIES} times the "
            f"published warehouse ({published / 1e9:.1f} GB): free some space"
        )
    return problems
