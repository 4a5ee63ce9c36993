"""The infusion-outcomes command: generate demo data, refresh the warehouse, run the demo."""

from __future__ import annotations

import os
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from pipelines.outcomes.rules import rule_fields, rule_type


def rule_options(command):
    """Add one --option per clinical parameter (shared spec), defaulting to the settings."""
    for field in reversed(rule_fields()):
        command = click.option(
            "--" + field.name.replace("_", "-"),
            field.name,
            type=rule_type(field),
            default=None,
            help=f"{field.metadata['doc']} [default: {field.default}]",
        )(command)
    return command


def settings_from(**overrides: Any):
    """Return Settings from the environment with the CLI's given values on top."""
    from pipelines.resources import Settings

    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def failure_reason(result) -> str:
    """Return one line saying why a Dagster run failed: the innermost error of the first failed step or check."""
    for event in result.all_events:
        if event.is_step_failure or event.event_type_value in ("RESOURCE_INIT_FAILURE", "RUN_FAILURE"):
            data = getattr(event.event_specific_data, "error", None)
            if data is None:
                continue
            while data.cause is not None:
                data = data.cause
            message = data.message.strip().splitlines()[0] if data.message.strip() else data.cls_name
            # Dagster prefixes the exception's dotted class name; the operator needs only the sentence.
            return re.sub(rf"^([\w.]*\.)?{re.escape(data.cls_name)}: ", "", message)
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if failed_checks:
        check = failed_checks[0]
        return f"blocking check {check.check_name} on {check.asset_key.to_user_string()} failed; nothing was published"
    return "the refresh failed; run `make ui` and open the run for details"


def execute_refresh(settings, verbose: bool = False):
    """Return the result of materializing every asset through the Definitions the UI loads."""
    from dagster import DagsterInstance

    from pipelines.definitions import REFRESH_JOB, build_definitions

    definitions = build_definitions(settings)
    job = definitions.resolve_job_def(REFRESH_JOB)
    # With DAGSTER_HOME set (make ui) the run shows in the UI's history; otherwise it leaves no trace.
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    log_level = "INFO" if verbose else "CRITICAL"
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def run_refresh(settings, verbose: bool = False) -> None:
    """Refresh and print the summary; exit non-zero with one line on failure."""
    if not Path(settings.inbox).is_dir():
        raise click.ClickException(f"the inbox folder {settings.inbox} does not exist")
    result = execute_refresh(settings, verbose)
    if not result.success:
        raise click.ClickException(f"refresh failed: {failure_reason(result)}")
    print_summary(settings)


def print_summary(settings) -> None:
    """Print the aggregate summary of the published warehouse and where things were written."""
    import duckdb

    from pipelines.reports.summary import refresh_summary, summary_lines

    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        lines = summary_lines(refresh_summary(con))
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
@click.option("--warehouse", type=click.Path(path_type=Path), default=None, help="warehouse file [env OUTCOMES_WAREHOUSE]")
@click.option("--reports", type=click.Path(path_type=Path), default=None, help="reports folder [env OUTCOMES_REPORTS]")
@click.option("--as-of", type=str, default=None, help="ISO 8601 time treated as now [default: now]")
@click.option("--verbose", is_flag=True, help="show Dagster's step log")
@rule_options
def refresh(verbose: bool, **options: Any) -> None:
    """Read the inbox, validate, compute outcomes, check, and publish warehouse and reports."""
    try:
        settings = settings_from(**options)
    except Exception as error:  # pydantic's message lists every invalid value
        raise click.ClickException(f"invalid setting: {error}".splitlines()[0]) from None
    run_refresh(settings, verbose)


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


if __name__ == "__main__":
    sys.exit(main())
