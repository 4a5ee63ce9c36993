"""The infusion-outcomes command: generate demo data, refresh the warehouse, run the demo."""

from __future__ import annotations

import gc
import json
import os
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from pipelines.outcomes.rules import rule_fields


def rule_options(command):
    """Add one --option per clinical parameter (shared spec), defaulting to the settings."""
    for name, field in reversed(rule_fields().items()):
        command = click.option(
            "--" + name.replace("_", "-"),
            name,
            type=field.annotation,
            default=None,
            help=f"{field.description} [default: {field.default}]",
        )(command)
    return command


def settings_from(**overrides: Any):
    """Return Settings from the environment with the CLI's given values on top."""
    from pipelines.resources import Settings

    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def setting_problem(error: ValidationError) -> str:
    """Return the first problem of a settings validation error in one line: which setting, which value, why."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ()))
    message = problem["msg"].removeprefix("Value error, ")
    if not where:
        return message
    return f"{where} (OUTCOMES_{where.upper()}) = {problem.get('input')!r}: {message}"


def without_duckdb_prefix(message: str) -> str:
    """Return a message a check of ours raised through DuckDB's error() without DuckDB's "Invalid Input Error: "."""
    return message.removeprefix("Invalid Input Error: ")


def failure_reason(result) -> str:
    """Return one line saying why a Dagster run failed: the innermost error of the first failed step or check."""
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if failed_checks:  # the step that built the table failed because its blocking check did
        check = failed_checks[0]
        return f"blocking check {check.check_name} on {check.asset_key.to_user_string()} failed; nothing was published"
    for event in result.all_events:
        if event.is_step_failure or event.event_type_value in ("RESOURCE_INIT_FAILURE", "RUN_FAILURE"):
            data = getattr(event.event_specific_data, "error", None)
            if data is None:
                continue
            while data.cause is not None:
                data = data.cause
            message = data.message.strip().splitlines()[0] if data.message.strip() else data.cls_name
            # Dagster prefixes the exception's dotted class name; the operator needs only the sentence.
            return without_duckdb_prefix(re.sub(rf"^([\w.]*\.)?{re.escape(data.cls_name)}: ", "", message))
    return "the refresh failed; run `make ui` and open the run for details"


def refresh_instance():
    """Return the Dagster instance a refresh runs in: with DAGSTER_HOME set (make ui) the run shows in the UI's
    history; otherwise it leaves no trace."""
    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def execute_refresh(settings, verbose: bool = False, instance=None, progress: bool = False):
    """Return the result of materializing every asset through the Definitions the UI loads.

    progress: print a line as each step starts and ends (pipelines.progress).
    """
    from pipelines.definitions import REFRESH_JOB, build_definitions

    definitions = build_definitions(settings)
    job = definitions.resolve_job_def(REFRESH_JOB)
    instance = instance or refresh_instance()
    log_level = "INFO" if verbose else "CRITICAL"
    loggers = {"console": {"config": {"log_level": log_level}}}
    if progress:
        loggers["step_progress"] = {}
    from pipelines.progress import stop_live_progress

    try:
        return job.execute_in_process(instance=instance, raise_on_error=False, run_config={"loggers": loggers})
    finally:
        stop_live_progress()


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Return how long each step of a finished run took, in seconds, slowest first (from its event log)."""
    started, seconds = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] = round(record.timestamp - started[event.step_key], 3)
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def run_refresh(settings, verbose: bool = False, timings: Path | None = None, quiet: bool = False) -> None:
    """Refresh, printing the mode first, each step as it runs and the summary with the total time at the end;
    exit non-zero with one line on failure. timings: write step seconds there. quiet: print only failures."""
    import time

    from pipelines.incremental.policy import reason_to_read_everything
    from pipelines.progress import carrying_on_unread, preflight

    started = time.monotonic()
    problems = preflight(Path(settings.inbox), Path(settings.warehouse), Path(settings.reports))
    if problems:
        raise click.ClickException(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    say = (lambda line: None) if quiet else click.echo
    warehouse = Path(settings.warehouse)
    reason = reason_to_read_everything(
        warehouse, warehouse.with_name(warehouse.name + ".raw"), settings.refresh_mode, settings.clinic_timezone
    )
    with carrying_on_unread():
        say(f"mode: full ({reason})" if reason else "mode: incremental, if the clinical parameters are unchanged")
    instance = refresh_instance()
    result = execute_refresh(settings, verbose, instance, progress=not quiet)
    if timings is not None:
        timings.write_text(json.dumps(step_seconds(instance, result.run_id), indent=2) + "\n")
    if not result.success:
        raise click.ClickException(f"refresh failed: {failure_reason(result)}")
    if quiet:
        return
    with carrying_on_unread():  # the refresh is published: a reader gone is no failure
        print_summary(settings)
        for event in result.get_asset_materialization_events():
            board_pack = event.materialization.metadata.get("board_pack")
            if board_pack is not None:
                say(board_pack.value)
        say(f"refresh finished in {time.monotonic() - started:.1f} s")


def print_summary(settings) -> None:
    """Print the aggregate summary of the published warehouse and where things were written."""
    import duckdb

    from pipelines.database import last_refresh
    from pipelines.reports.summary import refresh_summary, summary_lines

    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        lines = summary_lines(refresh_summary(con))
        scope = last_refresh(con)["refresh_scope"]
    click.echo(f"refresh: {scope}")
    for line in lines:
        click.echo(line)
    click.echo(f"warehouse: {settings.warehouse}")
    click.echo(f"reports:   {settings.reports}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Outcomes analytics for ketamine infusion clinics.

    Settings come from OUTCOMES_* environment variables (e.g. OUTCOMES_INBOX,
    OUTCOMES_WAREHOUSE, OUTCOMES_SERIES_GAP_DAYS); options override them.
    """


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder to write the inbox CSVs into")
@click.option("--patients", type=click.IntRange(1), default=2000, show_default=True, help="patients to generate")
@click.option("--clinics", type=click.IntRange(1, 26), default=4, show_default=True, help="clinics to spread them over")
@click.option("--seed", type=int, default=7, show_default=True, help="random seed: the same seed gives the same files")
@click.option("--end-date", type=click.DateTime(["%Y-%m-%d"]), default=None, help="last day of data [default: today]")
@click.option("--years", type=click.FloatRange(0.25, 20), default=3.0, show_default=True, help="years of history")
def generate(out: Path, patients: int, clinics: int, seed: int, end_date: datetime | None, years: float) -> None:
    """Write a realistic synthetic inbox (patients, infusions, assessments)."""
    from pipelines.demo.generator import write_inbox

    counts = write_inbox(out, patients, clinics, seed, (end_date.date() if end_date else date.today()), years)
    for name, rows in counts.items():
        click.echo(f"{out / name}: {rows} rows")


@main.command()
@click.option("--inbox", type=click.Path(path_type=Path), default=None, help="inbox folder [env OUTCOMES_INBOX]")
@click.option(
    "--warehouse", type=click.Path(path_type=Path), default=None, help="warehouse file [env OUTCOMES_WAREHOUSE]"
)
@click.option("--reports", type=click.Path(path_type=Path), default=None, help="reports folder [env OUTCOMES_REPORTS]")
@click.option("--as-of", type=str, default=None, help="ISO 8601 time treated as now [default: now]")
@click.option(
    "--patient-pages",
    is_flag=True,
    default=None,
    help="also write identifiable per-patient pages for clinicians (reports/patients/)",
)
@click.option(
    "--full",
    "refresh_mode",
    flag_value="full",
    default=None,
    help="recompute every patient, even when the last refresh allows recomputing only changed ones",
)
@click.option(
    "--no-disclosure-control",
    "disclosure_control",
    flag_value=False,
    default=None,
    help="publish every count however small (needed for --min-cell-size below 2); every page then says it is "
    "NOT FOR PUBLICATION",
)
@click.option(
    "--no-board-pack",
    "board_pack",
    flag_value=False,
    default=None,
    help="do not print the network's and each clinic's page to PDF",
)
@click.option("--verbose", is_flag=True, help="show Dagster's step log")
@click.option("--quiet", is_flag=True, help="print nothing unless the refresh fails (for cron)")
@click.option(
    "--timings",
    type=click.Path(path_type=Path),
    default=None,
    help="write how long each step took (seconds, JSON) to this file",
)
@rule_options
def refresh(verbose: bool, quiet: bool, timings: Path | None, **options: Any) -> None:
    """Read the inbox, validate, compute outcomes, check, and publish warehouse and reports.

    After a published refresh, only patients with new, changed or removed rows,
    or with a row dated in the future that the as-of time has since passed, are
    recomputed (and merged), unless --full, the clinical parameters, the code or
    the clinic timezone say otherwise; the first line printed says which.
    """
    try:
        settings = settings_from(**options)
    except ValidationError as error:
        raise click.ClickException(f"invalid setting: {setting_problem(error)}") from None
    run_refresh(settings, verbose, timings, quiet)


@main.command()
@click.option("--patients", type=click.IntRange(1), default=2000, show_default=True, help="patients to generate")
@click.option("--clinics", type=click.IntRange(1, 26), default=4, show_default=True, help="clinics to spread them over")
@click.option("--seed", type=int, default=7, show_default=True, help="random seed")
@click.option("--verbose", is_flag=True, help="show Dagster's step log")
def demo(patients: int, clinics: int, seed: int, verbose: bool) -> None:
    """Generate the demo inbox (3 years up to today) and refresh from it, at the default locations."""
    from pipelines.demo.generator import write_inbox

    settings = settings_from()
    counts = write_inbox(settings.inbox, patients, clinics, seed, date.today(), 3.0)
    click.echo(f"demo inbox: {settings.inbox} ({', '.join(f'{n} {r} rows' for n, r in counts.items())})")
    run_refresh(settings, verbose)


def warehouse_option(command):
    return click.option(
        "--warehouse",
        type=click.Path(path_type=Path),
        default=None,
        help="warehouse file [default: the published one, env OUTCOMES_WAREHOUSE]",
    )(command)


def warehouse_to_read(warehouse: Path | None) -> Path:
    """Return the warehouse a reading command opens: the one given, else the published one of the settings."""
    return warehouse or settings_from().warehouse


def limit_options(command):
    """Add the limits of one ad-hoc query: --max-rows and --timeout (env OUTCOMES_SQL_MAX_ROWS, _TIMEOUT)."""
    from pipelines.analyst import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_SECONDS

    command = click.option(
        "--timeout",
        "timeout_seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default=True,
        envvar="OUTCOMES_SQL_TIMEOUT",
        help="seconds a query may run before it is stopped",
    )(command)
    return click.option(
        "--max-rows",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_ROWS,
        show_default=True,
        envvar="OUTCOMES_SQL_MAX_ROWS",
        help="rows a query may return; past it nothing is printed and the command says so",
    )(command)


# A query may start with a comment (-- what it answers): taken as SQL, not as an option.
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("query", required=False)
@click.option("--file", "query_file", type=click.File("r"), default=None, help="read the SQL from a file")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json", "markdown"]),
    default="table",
    show_default=True,
    help="how to print the rows",
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="write to this file instead of stdout")
@warehouse_option
@limit_options
def sql(
    query: str | None,
    query_file,
    output_format: str,
    output: Path | None,
    warehouse: Path | None,
    max_rows: int,
    timeout_seconds: float,
) -> None:
    """Run SQL against the published warehouse, read-only, within a time limit and a row cap.

    CSV cells that a spreadsheet would run as a formula (=, +, -, @) are
    written with a leading quote.

    \b
    infusion-outcomes sql "select clinic_id, count(*) from marts.treatment_series group by all"
    infusion-outcomes sql --file sql/examples/response_by_dose_band.sql --format csv --output out.csv
    """
    import duckdb

    from pipelines.analyst import QueryRefused, connect_read_only, formatted, run_query

    if (query is None) == (query_file is None):
        raise click.UsageError("give the SQL as an argument or with --file, not both")
    text = query if query is not None else query_file.read()
    try:
        with connect_read_only(warehouse_to_read(warehouse)) as con:
            columns, rows = run_query(con, text, max_rows, timeout_seconds)
    except (QueryRefused, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    except duckdb.Error as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    rendered = formatted(columns, rows, output_format) if columns else "(no rows: the statement returns none)\n"
    if output:
        output.write_text(rendered)
        click.echo(f"{len(rows)} rows written to {output}", err=True)
    else:
        click.echo(rendered, nl=False)


@main.command()
@warehouse_option
@limit_options
def shell(warehouse: Path | None, max_rows: int, timeout_seconds: float) -> None:
    """An interactive, read-only SQL prompt on the published warehouse.

    The connection can read the warehouse and nothing else: no files, no
    extensions, no settings (the duckdb command-line tool's own dot commands
    such as .shell and .output cannot be switched off, so it is not used).
    Each statement runs within the time limit and row cap of `sql`.
    """
    path = warehouse_to_read(warehouse)
    if not path.is_file():
        raise click.ClickException(f"no warehouse at {path}; run `make demo` or `infusion-outcomes refresh` first")
    prompt_loop(path, max_rows, timeout_seconds)


def prompt_loop(path: Path, max_rows: int | None = None, timeout_seconds: float | None = None) -> None:
    """Read statements ending in ';' from the terminal and print their rows, until EOF or .quit."""
    import duckdb

    from pipelines.analyst import (
        DEFAULT_MAX_ROWS,
        DEFAULT_TIMEOUT_SECONDS,
        QueryRefused,
        connect_read_only,
        formatted,
        run_query,
    )

    if sys.stdin.isatty():
        import readline  # noqa: F401 - line editing and history for input()

    limits = (max_rows or DEFAULT_MAX_ROWS, timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    click.echo(f"read-only session on {path}; end statements with ';', .quit to leave")
    buffer: list[str] = []
    with connect_read_only(path) as con:
        while True:
            try:
                line = input("D " if not buffer else "· ")
            except EOFError:
                break
            if not buffer and line.strip() in (".quit", ".exit"):
                break
            if not buffer and line.strip().startswith("."):
                click.echo(f"{line.strip().split()[0]}: not available here; only SQL statements and .quit", err=True)
                continue
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
            statement, buffer = "\n".join(buffer), []
            try:
                columns, rows = run_query(con, statement, *limits)
                click.echo(formatted(columns, rows, "table") if columns else "ok", nl=not columns)
            except (QueryRefused, duckdb.Error) as error:
                click.echo(str(error).splitlines()[0], err=True)


@main.command()
@warehouse_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/data-dictionary.md"),
    show_default=True,
    help="Markdown file to write",
)
def docs(warehouse: Path | None, out: Path) -> None:
    """Write the data dictionary (every table and column, with its type and meaning) as Markdown."""
    from pipelines.analyst import connect_read_only
    from pipelines.dictionary import dictionary_markdown

    try:
        with connect_read_only(warehouse_to_read(warehouse)) as con:
            text = dictionary_markdown(con)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"data dictionary written to {out}")


@main.command()
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="file format for BI tools",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder to write the files into")
@click.option(
    "--include-identifiable",
    is_flag=True,
    help="also export the clinicians' worklists that name patients (marts.suicidality_worklist, "
    "marts.early_non_improvement_worklist)",
)
@warehouse_option
def export(file_format: str, out: Path, warehouse: Path | None, include_identifiable: bool) -> None:
    """Export every mart as one file, with manifest.json (tables, row counts, refresh time).

    CSV cells a spreadsheet would run as formulas are escaped. The clinicians'
    identifiable worklists are left out unless --include-identifiable.
    """
    from pipelines.analyst import export_tables

    path = warehouse_to_read(warehouse)
    if not path.is_file():
        raise click.ClickException(f"no warehouse at {path}; run `make demo` or `infusion-outcomes refresh` first")
    manifest = export_tables(path, out, file_format, include_identifiable)
    for entry in manifest["tables"]:
        click.echo(f"{out / entry['file']}: {entry['row_count']} rows")
    for table in manifest["left_out_identifiable"]:
        click.echo(f"left out {table}: it names patients (give --include-identifiable to export it)")
    click.echo(f"{out / 'manifest.json'}: refreshed at {manifest['refreshed_at']}")


@main.group()
def sources() -> None:
    """The inbox's sources: the contract CSVs and the mapping files in its sources/ folder."""


@sources.command("check")
@click.option("--inbox", type=click.Path(path_type=Path), default=None, help="inbox folder [env OUTCOMES_INBOX]")
def sources_check(inbox: Path | None) -> None:
    """Read every source as a refresh would and print rows per record type and the first problems.

    Nothing is written: the rows are validated by the pipeline's own SQL in memory.
    """
    import duckdb
    import polars as pl

    from pipelines.ingest.csv_inbox import InboxError
    from pipelines.ingest.dry_run import first_problems
    from pipelines.ingest.fhir import missing_defaults
    from pipelines.ingest.mapping import MappingError
    from pipelines.ingest.sources import CSV_SOURCE, frames_of_source, mapping_of, source_names
    from pipelines.resources import now_in

    settings = settings_from(**({"inbox": inbox} if inbox else {}))
    folder = Path(settings.inbox)
    if not folder.is_dir():
        raise click.ClickException(f"the inbox folder {folder} does not exist")
    everything: dict[str, list[pl.DataFrame]] = {}
    failed = False
    for name in source_names(folder):
        try:
            frames, skipped = frames_of_source(folder, name)
        except (MappingError, InboxError) as error:
            click.echo(f"{name}: ERROR {error}")
            failed = True
            continue
        counts = ", ".join(f"{frame.height} {record_type}" for record_type, frame in frames.items()) or "nothing"
        click.echo(f"{name}: {counts}" + (f" (skipped: {skipped})" if skipped else ""))
        if name != CSV_SOURCE:
            path, mapping = mapping_of(folder, name)
            if mapping.format == "fhir":
                for missing in missing_defaults(frames, name, None if path is None else f"sources/{path.name}"):
                    click.echo(f"  {missing}")
        for record_type, frame in frames.items():
            everything.setdefault(record_type, []).append(frame)
    if failed:
        raise click.ClickException("a source cannot be read; nothing was checked further")
    combined = {t: pl.concat(parts, how="diagonal_relaxed") for t, parts in everything.items()}
    as_of = settings.as_of or now_in(settings.clinic_timezone)
    try:
        problems = first_problems(combined, as_of, settings.clinic_timezone)
    except duckdb.InvalidInputException as error:  # a check that fails the run, such as an unknown time zone
        raise click.ClickException(f"a refresh would fail: {without_duckdb_prefix(str(error))}") from None
    click.echo("first problems:" if problems else "no row would be rejected")
    for source_file, row_number, line_number, record_type, reason, detail in problems:
        # The line is where an editor or a spreadsheet shows the row (the header is line 1); a source without
        # lines (FHIR) has its entry number.
        where = f"row {row_number}" if line_number is None else f"line {line_number} (data row {row_number})"
        click.echo(f"  {source_file} {where} ({record_type}): {reason}: {detail}")


def run(args: list[str] | None = None) -> None:
    """The infusion-outcomes command (and python -m pipelines.cli): main, then a quick exit."""
    try:
        main(args)
    finally:
        # What is left lives until the process ends. Frozen, it is skipped by the collections the interpreter
        # runs as it exits, which otherwise walk the few hundred thousand objects Dagster loads: 0.7 s of
        # every refresh, measured at 10,000 patients.
        gc.freeze()


if __name__ == "__main__":
    run()
