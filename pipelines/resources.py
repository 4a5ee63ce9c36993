"""Settings and Dagster resources: the only module that reads the environment.

Every value has one default here; the environment (OUTCOMES_*), the CLI and
the Dagster run config override it, in that order of precedence from lowest.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import filelock
from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.database import (
    REFRESHES_DESCRIPTION,
    REFRESHES_TABLE,
    WAREHOUSE_CONFIG,
    record_refresh,
    sql_string,
)
from pipelines.dictionary import write_comments
from pipelines.incremental.policy import BUILDING, code_fingerprint, reason_to_read_everything, stamp_raw_store
from pipelines.incremental.scope import attach_recomputed_rows, plan_of
from pipelines.outcomes.rules import OutcomeRules, rule_fields
from pipelines.publication import Publication, clone_file, copy_tree_keeping_links


class Settings(OutcomeRules, BaseSettings):
    """Every setting of the pipeline, from OUTCOMES_* environment variables or defaults.

    The clinical parameters are OutcomeRules' fields (OUTCOMES_SERIES_GAP_DAYS, ...); the rest are here.
    """

    model_config = SettingsConfigDict(env_prefix="OUTCOMES_", extra="ignore")

    inbox: Path = Field(default=Path("data/inbox"), description="folder the clinics' files arrive in")
    warehouse: Path = Field(
        default=Path("data/warehouse/outcomes.duckdb"), description="the published DuckDB warehouse"
    )
    reports: Path = Field(default=Path("data/reports"), description="folder the published reports go to")
    as_of: datetime | None = Field(
        default=None, description="the time a refresh treats as now (future-dated rows are rejected); default: now"
    )
    clinic_timezone: str = Field(
        default="America/Chicago",
        description="local time of the clinics: bare dates are 00:00 there and offsets are converted to it",
    )
    schedule_timezone: str = Field(default="America/Chicago", description="timezone of the nightly schedule")
    schedule_cron: str = Field(default="0 2 * * *", description="when the nightly refresh runs")
    sensor_interval_seconds: int = Field(default=60, description="how often the inbox sensor looks for new files")
    patient_pages: bool = Field(
        default=False, description="also publish identifiable per-patient pages for clinicians (reports/patients/)"
    )
    disclosure_control: bool = Field(
        default=True,
        description="hide small counts on published pages (spec §10.8); false marks every page not for publication",
    )
    board_pack: bool = Field(
        default=True,
        description="also print the network's and each clinic's page to PDF with headless Chromium (when installed)",
    )
    duckdb_memory_limit: str | None = Field(
        # DuckDB's own default is 80% of the machine, and it keeps table blocks cached up to that: a refresh of
        # a million patients then peaked at 6 GB. 3 GB leaves room for the Polars outcome engine beside it;
        # beyond it DuckDB evicts and spills to disk.
        default="3GB",
        description="cap on DuckDB's memory, e.g. '3GB' or '10GB'; beyond it DuckDB spills to disk",
    )
    refresh_mode: Literal["auto", "full"] = Field(
        default="auto",
        description="auto: recompute only patients with new or changed rows when the last publication allows it; "
        "full: recompute everything",
    )

    @model_validator(mode="after")
    def small_cells_only_without_disclosure_control(self) -> Settings:
        if self.min_cell_size < 2 and self.disclosure_control:
            raise ValueError(
                f"min_cell_size {self.min_cell_size} would publish counts of single patients: use 2 or more, or "
                "switch disclosure control off by name (--no-disclosure-control), which marks every page not for "
                "publication"
            )
        return self


def rules_from(config: Any) -> OutcomeRules:
    """Return the OutcomeRules carried by a settings object or a RulesResource."""
    return OutcomeRules(**{name: getattr(config, name) for name in rule_fields()})


class RulesResource(dg.ConfigurableResource, OutcomeRules):
    """The clinical parameters of shared spec §3-7, overridable in the run config."""


def now_in(timezone: str) -> datetime:
    """Return the wall-clock time in a timezone, without the offset (the warehouse keeps local time)."""
    return datetime.now(ZoneInfo(timezone)).replace(tzinfo=None, microsecond=0)


# Past this share of free blocks, publication writes the warehouse into a fresh file (Warehouse.compact). DuckDB
# writes into the blocks a refresh freed before it adds new ones, so without compaction a warehouse levels off at
# its rows plus one refresh's replaced tables (250 patients: 9.0 to 16.9 MB, 10,000: 21.7 to 34 MB, flat over
# eight refreshes); compacting at that level every night cost 0.75 s of a 6 s incremental refresh at 10,000
# patients. Compaction bounds the file at twice its rows, should blocks ever be left unused.
COMPACT_FREE_SHARE = 0.5
# The first asset of a run that reads the inbox: a run that materializes it builds every table from nothing.
RAW_PATIENTS = dg.AssetKey(["raw", "patients"])


class WorkingCopy:
    """A copy of the published warehouse made in a thread of its own (clone_file), for a run to wait for."""

    def __init__(self, source: Path, target: Path):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._make, args=(source, target), name="working-copy")
        self._thread.start()

    def _make(self, source: Path, target: Path) -> None:
        try:
            clone_file(source, target)
        except BaseException as error:  # raised again in the step that waits for the copy
            self._error = error

    def wait(self, raise_error: bool = True) -> None:
        """Return once the copy is made; raise what made it fail (a full disk, say), unless told not to."""
        self._thread.join()
        if self._error is not None and raise_error:
            raise self._error


class WarehouseBusyError(RuntimeError):
    """Another refresh is writing the same warehouse."""


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse: a run writes a working copy; only the publish step replaces the published file.

    Readers never hold the working copy, so a refresh is never blocked by an
    analyst; an analyst who holds the published file open keeps reading the
    version they opened until they reconnect.
    """

    path: str = Field(description="the published DuckDB file that readers and reports use")
    clinic_timezone: str = Field(default="America/Chicago", description="local time of the clinics")
    as_of: str | None = Field(default=None, description="the time treated as now (ISO 8601); default: run start")
    memory_limit: str | None = Field(default=None, description="DuckDB memory_limit, e.g. '6GB'")
    refresh_mode: Literal["auto", "full"] = Field(
        default="auto", description="auto: incremental when the last publication allows it; full: read everything"
    )

    _lock: filelock.BaseFileLock | None = PrivateAttr(default=None)
    _database: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _raw_store_database: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _working_copy: WorkingCopy | None = PrivateAttr(default=None)
    _as_of: datetime | None = PrivateAttr(default=None)
    _full_read_reason: str | None = PrivateAttr(default=None)

    @property
    def published_path(self) -> Path:
        return Path(self.path)

    @property
    def working_path(self) -> Path:
        return self.published_path.with_name(self.published_path.name + ".building")

    @property
    def raw_store_path(self) -> Path:
        """The raw store's DuckDB file (views over the kept rows, file states, the refresh scope): never published."""
        return self.published_path.with_name(self.published_path.name + ".raw")

    @property
    def raw_rows_path(self) -> Path:
        """The inbox rows as read, as Parquet parts per source and record type: kept for the next refresh."""
        return self.published_path.with_name(self.published_path.name + ".raw-rows")

    @property
    def as_of_time(self) -> datetime:
        if self._as_of is None:
            self._as_of = datetime.fromisoformat(self.as_of) if self.as_of else now_in(self.clinic_timezone)
        return self._as_of

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = filelock.FileLock(str(self.published_path) + ".lock")
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise WarehouseBusyError(
                f"another refresh is writing {self.published_path} (lock {self._lock.lock_file})"
            ) from None
        self._full_read_reason = self.reason_to_read_everything()
        run = context.run
        if self.reads_changes_only:
            # An incremental refresh merges into what is published. Where the file system cannot clone, the
            # copy (a million patients' 1.25 GB: 0.3 to 2 s) is made while the raw steps read the inbox, which
            # need the raw store only (connect_to_raw_store); the first step that needs the copy waits for it.
            self._working_copy = WorkingCopy(self.published_path, self.working_path)
        elif run is not None and run.asset_selection and RAW_PATIENTS not in run.asset_selection:
            # Materializing a few assets in the UI: start from what is published, so the tables upstream of
            # them are there. (A job's run carries an empty selection: everything.)
            if not self.working_path.exists() and self.published_path.exists():
                clone_file(self.published_path, self.working_path)
        else:
            # A run that reads the inbox whole writes every table anew: into an empty file and an empty raw
            # store, whatever is published or was left behind (a stopped run's working copy, a damaged file).
            for stale in (self.working_path, self.raw_store_path):
                stale.unlink(missing_ok=True)
                stale.with_name(stale.name + ".wal").unlink(missing_ok=True)
        # Until publication stamps it, the raw store matches no published warehouse.
        stamp_raw_store(self.raw_store_path, BUILDING)
        _ = self.as_of_time  # fixed once per run: every step judges "future" against the same time

    @property
    def reads_changes_only(self) -> bool:
        """True when this run reads only new and changed inbox files into the kept raw tables."""
        return self._full_read_reason is None

    @property
    def full_read_reason(self) -> str | None:
        """Why this run reads the whole inbox, or None when it reads only what changed."""
        return self._full_read_reason

    def reason_to_read_everything(self) -> str | None:
        """Return why the kept raw tables cannot be reused, or None when they can."""
        return reason_to_read_everything(
            self.published_path, self.raw_store_path, self.refresh_mode, self.clinic_timezone
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._working_copy is not None:
            # Never let the lock go while the copy is still being written: the next refresh would write it too.
            self._working_copy.wait(raise_error=False)
            self._working_copy = None
        self.close()
        if self._lock is not None:
            self._lock.release()

    def open_database(self) -> duckdb.DuckDBPyConnection:
        """Return the run's one connection to the working copy, opened on first use with the raw store attached.

        Every step works through a cursor of it: opening and closing a DuckDB
        file per step cost tens of milliseconds each way (a checkpoint at every
        close), seconds over a run of some sixty steps.
        """
        if self._database is None:
            if self._working_copy is not None:
                started = time.monotonic()
                self._working_copy.wait()
                if (waited := time.monotonic() - started) >= 0.1:  # counted in this step's time: said in its log
                    dg.get_dagster_logger().info(
                        f"waited {waited:.1f} s for the working copy of {self.published_path} to be made"
                    )
            self.close_raw_store_database()  # the raw store is attached below: one instance writes it at a time
            database = self.connect_with_raw_store(str(self.working_path))
            attach_recomputed_rows(database)  # the rows this run's merges write, for the steps after them
            for schema in ("seeds", "quarantine", "staging", "intermediate", "marts"):
                database.execute(f"create schema if not exists {schema}")
            self._database = database
        return self._database

    def connect_with_raw_store(self, database_path: str) -> duckdb.DuckDBPyConnection:
        """Return a new DuckDB connection to a database file (or ':memory:') with the raw store attached as raw."""
        database = duckdb.connect(
            database_path,
            # Where DuckDB spills past its memory limit: beside the working copy, as it does for a file it opens
            # (an in-memory database would spill into the current folder).
            config={**WAREHOUSE_CONFIG, "temp_directory": str(self.working_path) + ".tmp"},
        )
        if self.memory_limit:
            database.execute(f"set memory_limit = '{self.memory_limit}'")
        database.execute(f"attach {sql_string(self.raw_store_path)} as raw")
        return database

    def close_raw_store_database(self) -> None:
        if self._raw_store_database is not None:
            self._raw_store_database.close()
            self._raw_store_database = None

    def close(self) -> None:
        """Close the run's connections (their changes are checkpointed into the working copy and the raw store)."""
        self.close_raw_store_database()
        if self._database is not None:
            self._database.close()
            self._database = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a cursor on the working copy, with the raw tables attached and the run's variables set."""
        with self.cursor_of(self.open_database()) as con:
            yield con

    @contextmanager
    def connect_to_raw_store(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a cursor that reaches the raw store (as raw), for the steps that read the inbox into it and need
        nothing of the warehouse: on the run's connection once it is open, else on one of the raw store alone, so
        that they run while the working copy is still being made."""
        database = self._database
        if database is None:
            if self._raw_store_database is None:
                self._raw_store_database = self.connect_with_raw_store(":memory:")
            database = self._raw_store_database
        with self.cursor_of(database) as con:
            yield con

    @contextmanager
    def cursor_of(self, database: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a cursor of a connection with the run's variables set."""
        con = database.cursor()
        try:
            con.execute("set enable_progress_bar = false")  # the CLI's output is the summary, not DuckDB's bars
            con.execute("set variable as_of = ?::timestamp", [self.as_of_time])
            con.execute("set variable clinic_timezone = ?", [self.clinic_timezone])
            yield con
        finally:
            con.close()

    def publish(self, rules: OutcomeRules, reports: Reports) -> Path:
        """Record the refresh, then publish the working copy and the reports together; return the generation.

        Readers see the old warehouse and reports or the new ones, never a mix
        (pipelines.publication). The raw store is stamped with the new
        generation last: a crash between the two leaves it unstamped, and the
        next refresh reads everything.
        """
        generation = uuid4().hex
        with self.connect() as con:
            scope, patients = plan_of(con)
            record_refresh(
                con,
                as_of=self.as_of_time,
                clinic_timezone=self.clinic_timezone,
                rules=rules,
                generation=generation,
                scope=scope,
                patients_recomputed=patients,
                code_fingerprint=code_fingerprint(),
            )
            write_comments(con, REFRESHES_TABLE, REFRESHES_DESCRIPTION)
            con.execute("checkpoint")
            total_blocks, free_blocks = con.execute(
                "select total_blocks, free_blocks from pragma_database_size() where database_name = current_database()"
            ).fetchall()[0]
        self.close()
        if free_blocks > COMPACT_FREE_SHARE * total_blocks:
            self.compact()
        with open(self.working_path, "rb+") as handle:
            os.fsync(handle.fileno())
        folder = Publication(self.published_path, reports.published_dir).publish(self.working_path, reports.prepare())
        stamp_raw_store(self.raw_store_path, generation, self.published_path.stat().st_size)
        return folder

    def compact(self) -> None:
        """Copy the working copy into a fresh file: an incremental refresh replaces tables in a copy of the
        published file, whose freed blocks DuckDB keeps (see COMPACT_FREE_SHARE)."""
        fresh = self.working_path.with_name(self.working_path.name + ".compact")
        fresh.unlink(missing_ok=True)
        with duckdb.connect(str(fresh), config=WAREHOUSE_CONFIG) as con:
            con.execute(f"attach {sql_string(self.working_path)} as working (read_only)")
            name = con.execute("select current_database()").fetchall()[0][0]
            con.execute(f'copy from database working to "{name}"')
            con.execute("detach working")
            con.execute("checkpoint")
        os.replace(fresh, self.working_path)


class Inbox(dg.ConfigurableResource):
    """The folder clinics' exports arrive in: the contract CSVs, and any export a sources/ mapping describes."""

    path: str = Field(
        description="folder holding patients.csv, infusions.csv and assessments.csv, or exports with their "
        "mappings in sources/ (CSV, Excel, FHIR)"
    )

    def fingerprint(self) -> str:
        """Return a string that changes whenever a file in the inbox is added, removed or rewritten."""
        folder = Path(self.path)
        if not folder.is_dir():
            return ""
        entries = sorted(
            f"{entry.name}:{entry.stat().st_size}:{entry.stat().st_mtime_ns}"
            for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith(".")
        )
        return "|".join(entries)


class Reports(dg.ConfigurableResource):
    """The reports folder: a run writes into a working folder, published with the warehouse (Warehouse.publish)."""

    path: str = Field(description="the published reports folder")
    patient_pages: bool = Field(
        default=False, description="also write identifiable per-patient pages for clinicians into patients/"
    )
    disclosure_control: bool = Field(
        default=True,
        description="hide small counts on published pages (spec §10.8); off only by name, which marks every page "
        "not for publication",
    )
    board_pack: bool = Field(
        default=True, description="also print each reader's page to PDF with headless Chromium (when installed)"
    )

    @property
    def published_dir(self) -> Path:
        return Path(self.path)

    @property
    def working_dir(self) -> Path:
        return self.published_dir.with_name(self.published_dir.name + ".building")

    def prepare(self) -> Path:
        """Return the working folder, started from the published one when there is none."""
        if not self.working_dir.exists():
            if self.published_dir.exists():
                copy_tree_keeping_links(self.published_dir, self.working_dir)
            else:
                self.working_dir.mkdir(parents=True)
        return self.working_dir


def resources_from(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Return the Dagster resources configured from a Settings object."""
    return {
        "inbox": Inbox(path=str(settings.inbox)),
        "warehouse": Warehouse(
            path=str(settings.warehouse),
            clinic_timezone=settings.clinic_timezone,
            as_of=settings.as_of.isoformat() if settings.as_of else None,
            refresh_mode=settings.refresh_mode,
            memory_limit=settings.duckdb_memory_limit,
        ),
        "reports": Reports(
            path=str(settings.reports),
            patient_pages=settings.patient_pages,
            disclosure_control=settings.disclosure_control,
            board_pack=settings.board_pack,
        ),
        "rules": RulesResource(**rules_from(settings).model_dump()),
    }
