"""What the operator sees while a refresh runs: each step's start and end as they happen, and what to fix first.

A Dagster logger writes one timestamped line as each step starts and ends
(plain lines, so that they read the same on a terminal and in the nightly
run's log); preflight checks what would make a refresh fail late, before any
work, each problem one line naming the path and what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import filelock

STEP_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE"}
# Working copies beside the published warehouse: a refresh needs room for about this many of it.
WORKING_COPIES = 3


def step_name(step_key: str) -> str:
    """Return a step key as the operator reads it: marts__series_outcomes -> marts.series_outcomes."""
    return step_key.replace("__", ".", 1)


class StepLines(logging.Handler):
    """Writes one line as each step starts, succeeds or fails, with its elapsed time."""

    def __init__(self, stream):
        super().__init__(level=logging.DEBUG)
        self.stream = stream
        self.started: dict[str, float] = {}
        self.done = 0

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if event is None or event.event_type_value not in STEP_EVENTS or event.step_key is None:
            return
        name, now = step_name(event.step_key), time.monotonic()
        clock = datetime.now().strftime("%H:%M:%S")
        if event.event_type_value == "STEP_START":
            self.started[event.step_key] = now
            line = f"[{clock}] {name} ..."
        else:
            self.done += 1
            seconds = now - self.started.get(event.step_key, now)
            outcome = "done" if event.event_type_value == "STEP_SUCCESS" else "FAILED"
            line = f"[{clock}] {name} {outcome} in {seconds:.1f} s ({self.done} steps done)"
        print(line, file=self.stream, flush=True)


@dg.logger(description="One line as each step starts and ends, with its time (the refresh command's progress).")
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
