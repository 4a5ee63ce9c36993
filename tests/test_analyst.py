"""Ad-hoc SQL for analysts: a read-only, documented warehouse, worked examples and exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from pipelines.cli import main, prompt_loop
from pipelines.dictionary import DOCUMENTED_SCHEMAS, dictionary_markdown
from tests.conftest import GOLDEN

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "sql" / "examples").glob("*.sql"))


@pytest.fixture(scope="module")
def golden_warehouse(tmp_path_factory) -> Path:
    from tests.conftest import Refresh

    refresh = Refresh(tmp_path_factory.mktemp("golden-warehouse"))
    refresh.ok(GOLDEN / "basic" / "inbox")
    return refresh.warehouse


def sql(warehouse: Path, *args: str):
    return CliRunner().invoke(main, ["sql", "--warehouse", str(warehouse), *args])


@pytest.mark.parametrize(
    "statement",
    [
        "drop table marts.series_outcomes",
        "insert into marts.treatment_series select * from marts.treatment_series",
        "create table marts.mine as select 1 as x",
        "delete from marts.treatment_series",
    ],
)
def test_a_statement_that_would_write_is_refused_in_one_line_and_changes_nothing(golden_warehouse, statement):
    before = hashlib.sha256(golden_warehouse.read_bytes()).hexdigest()
    result = sql(golden_warehouse, statement)
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: refused: the warehouse is read-only and \w+ would change it\n", result.output)
    assert hashlib.sha256(golden_warehouse.read_bytes()).hexdigest() == before


def test_a_read_only_session_cannot_write_files_either(golden_warehouse, tmp_path):
    result = sql(golden_warehouse, f"copy marts.treatment_series to '{tmp_path / 'leak.csv'}'")
    assert result.exit_code == 1 and "refused" in result.output
    assert not (tmp_path / "leak.csv").exists()


def test_an_sql_error_prints_duckdbs_message_without_a_traceback(golden_warehouse):
    result = sql(golden_warehouse, "select nope from marts.treatment_series")
    assert result.exit_code == 1
    assert result.output.startswith('Error: Binder Error: Referenced column "nope" not found')
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


QUERY = (
    "select patient_id, series_number, is_responder, relief_days from marts.series_outcomes "
    "where patient_id in ('P1', 'P2') order by 1"
)


def test_table_format_aligns_columns_and_shows_null(golden_warehouse):
    assert sql(golden_warehouse, QUERY).output == (
        "patient_id    series_number    is_responder    relief_days\n"
        "------------  ---------------  --------------  -------------\n"
        "P1            1                True            35\n"
        "P2            1                False           NULL\n"
    )


def test_csv_format(golden_warehouse):
    assert sql(golden_warehouse, "--format", "csv", QUERY).output == (
        "patient_id,series_number,is_responder,relief_days\nP1,1,True,35\nP2,1,False,\n"
    )


def test_json_format(golden_warehouse):
    assert json.loads(sql(golden_warehouse, "--format", "json", QUERY).output) == [
        {"patient_id": "P1", "series_number": 1, "is_responder": True, "relief_days": 35},
        {"patient_id": "P2", "series_number": 1, "is_responder": False, "relief_days": None},
    ]


def test_markdown_format(golden_warehouse):
    assert sql(golden_warehouse, "--format", "markdown", QUERY).output.splitlines()[:3] == [
        "| patient_id   | series_number   | is_responder   | relief_days   |",
        "|--------------|-----------------|----------------|---------------|",
        "| P1           | 1               | True           | 35            |",
    ]


def test_output_goes_to_a_file_when_asked(golden_warehouse, tmp_path):
    result = sql(golden_warehouse, "--format", "csv", "--output", str(tmp_path / "out.csv"), QUERY)
    assert result.exit_code == 0
    assert (tmp_path / "out.csv").read_text().startswith("patient_id,series_number")


def test_sql_reads_a_file(golden_warehouse, tmp_path):
    (tmp_path / "q.sql").write_text("-- how many series\nselect count(*) as n from marts.treatment_series;\n")
    assert sql(golden_warehouse, "--file", str(tmp_path / "q.sql"), "--format", "csv").output == "n\n10\n"


def test_every_table_and_column_of_the_warehouse_is_described(golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as con:
        schemas = ", ".join(f"'{s}'" for s in DOCUMENTED_SCHEMAS)
        undescribed_tables = con.execute(
            f"select schema_name || '.' || table_name from duckdb_tables() "
            f"where schema_name in ({schemas}) and coalesce(comment, '') = '' union all "
            f"select schema_name || '.' || view_name from duckdb_views() "
            f"where schema_name in ({schemas}) and coalesce(comment, '') = ''"
        ).fetchall()
        undescribed_columns = con.execute(
            f"select schema_name || '.' || table_name || '.' || column_name from duckdb_columns() "
            f"where schema_name in ({schemas}) and coalesce(comment, '') = ''"
        ).fetchall()
    assert undescribed_tables == []
    assert undescribed_columns == []  # describe new columns in sql/columns.yaml


def test_the_committed_data_dictionary_is_current(golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as con:
        generated = dictionary_markdown(con)
    # Regenerate with: infusion-outcomes docs
    assert (ROOT / "docs" / "data-dictionary.md").read_text() == generated


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_query_answers_its_question_on_the_demo_warehouse(demo_warehouse, example):
    text = example.read_text()
    assert text.startswith("-- Question: ")
    result = sql(demo_warehouse, "--file", str(example), "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) > 0


def test_there_are_at_least_ten_worked_examples():
    assert len(EXAMPLES) >= 10


def readme_sql_examples() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("## Ad-hoc SQL", 1)[1].split("\n## ", 1)[0]
    commands = [line[2:] for line in section.splitlines() if line.startswith("$ .venv/bin/infusion-outcomes sql")]
    return [shlex.split(command)[1:] for command in commands]


def test_the_readmes_ad_hoc_sql_examples_work_as_written(demo_warehouse):
    examples = readme_sql_examples()
    assert len(examples) >= 3
    for arguments in examples:
        result = CliRunner().invoke(main, [*arguments, "--warehouse", str(demo_warehouse)])
        assert result.exit_code == 0, (arguments, result.output)
        assert len(result.output.splitlines()) >= 3


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export_writes_every_mart_with_a_manifest_and_the_same_row_counts(demo_warehouse, tmp_path, file_format):
    result = CliRunner().invoke(
        main, ["export", "--format", file_format, "--out", str(tmp_path), "--warehouse", str(demo_warehouse)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        marts = {
            f"marts.{t}"
            for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        }
        for entry in manifest["tables"]:
            path = tmp_path / entry["file"]
            frame = pl.read_parquet(path) if file_format == "parquet" else pl.read_csv(path, infer_schema=False)
            expected = con.execute(f"select count(*) from {entry['table']}").fetchall()[0][0]
            assert frame.height == entry["row_count"] == expected
    worklists = {"marts.suicidality_worklist", "marts.early_non_improvement_worklist"}
    assert {entry["table"] for entry in manifest["tables"]} == marts - worklists
    assert set(manifest["left_out_identifiable"]) == worklists
    assert not (tmp_path / f"suicidality_worklist.{file_format}").exists()
    assert not (tmp_path / f"early_non_improvement_worklist.{file_format}").exists()
    assert "left out marts.suicidality_worklist: it names patients (give --include-identifiable" in result.output
    assert manifest["refreshed_at"] and manifest["as_of"] == "2026-06-30T00:00:00"


def test_export_writes_the_identifiable_worklist_only_when_asked(demo_warehouse, tmp_path):
    result = CliRunner().invoke(
        main,
        ["export", "--out", str(tmp_path), "--warehouse", str(demo_warehouse), "--include-identifiable"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    exported = {entry["table"] for entry in manifest["tables"]}
    assert {"marts.suicidality_worklist", "marts.early_non_improvement_worklist"} <= exported
    assert manifest["left_out_identifiable"] == []


def test_the_duckdb_command_line_tool_installed_with_the_project_reads_the_warehouse(golden_warehouse):
    binary = Path(sys.executable).with_name("duckdb")
    completed = subprocess.run(
        [
            str(binary),
            "-readonly",
            "-csv",
            str(golden_warehouse),
            "-c",
            "select count(*) as n from marts.series_outcomes",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.split() == ["n", "13"]


def test_shell_prompt_reads_statements_until_quit(golden_warehouse):
    @click.command()
    def prompt():
        prompt_loop(golden_warehouse)

    script = "select count(*) as n\nfrom marts.treatment_series;\ndrop table marts.treatment_series;\n.quit\n"
    output = CliRunner().invoke(prompt, input=script).output
    assert "n\n---\n10\n" in output
    assert "refused: the warehouse is read-only and DROP would change it" in output


HOSTILE = (
    "select '=HYPERLINK(\"http://x\",\"y\")' as link, '+cmd|'' /C calc''!A0' as dde, '@SUM(1)' as at, "
    "'-2+3' as minus, chr(9) || '=1' as tab, chr(13) || '=1' as cr, 'plain' as text, -3 as negative, 2.5 as number"
)


def test_sql_csv_escapes_cells_a_spreadsheet_would_run_as_formulas_but_not_numbers(golden_warehouse):
    rows = list(csv.reader(io.StringIO(sql(golden_warehouse, "--format", "csv", HOSTILE).output)))
    assert rows[1] == [
        '\'=HYPERLINK("http://x","y")',
        "'+cmd|' /C calc'!A0",
        "'@SUM(1)",
        "'-2+3",
        "'\t=1",
        "'\r=1",
        "plain",
        "-3",
        "2.5",
    ]


def test_exported_csv_escapes_formula_cells_and_parquet_keeps_them(tmp_path):
    from tests.conftest import Refresh, write_inbox

    inbox = write_inbox(
        tmp_path / "inbox",
        "patient_id,clinic_id,primary_indication\n=1+1,+cmd|' /C calc'!A0,depression\n",
        "patient_id,infused_at\n=1+1,2026-01-05\n",
        "patient_id,instrument,administered_at,score\n=1+1,phq9,2026-01-05,-1\n",
    )
    refresh = Refresh(tmp_path / "out")
    refresh.ok(inbox)
    for file_format in ("csv", "parquet"):
        result = CliRunner().invoke(
            main,
            [
                "export",
                "--warehouse",
                str(refresh.warehouse),
                "--format",
                file_format,
                "--out",
                str(tmp_path / file_format),
            ],
        )
        assert result.exit_code == 0, result.output
    with (tmp_path / "csv" / "treatment_series.csv").open(newline="") as handle:
        series = list(csv.DictReader(handle))
    assert (series[0]["patient_id"], series[0]["clinic_id"]) == ("'=1+1", "'+cmd|' /C calc'!A0")
    assert series[0]["infusion_count"] == "1"
    parquet = pl.read_parquet(tmp_path / "parquet" / "treatment_series.parquet")
    assert parquet.row(0, named=True)["patient_id"] == "=1+1"


def test_a_query_past_its_time_limit_is_stopped_in_one_line(golden_warehouse):
    result = sql(golden_warehouse, "--timeout", "0.5", "select count(*) from range(100000000000)")
    assert result.exit_code == 1
    assert result.output == (
        "Error: stopped: the query ran for longer than 0.5 s (--timeout); narrow it or allow more time\n"
    )


def test_a_query_past_its_row_cap_prints_nothing_but_one_line(golden_warehouse):
    result = sql(golden_warehouse, "--max-rows", "9", "select * from range(10)")
    assert result.exit_code == 1
    assert result.output.startswith("Error: stopped: the query returns more than 9 rows (--max-rows)")
    assert len(result.output.splitlines()) == 1
    assert sql(golden_warehouse, "--max-rows", "10", "--format", "csv", "select * from range(10)").exit_code == 0


def test_a_query_that_starts_with_a_comment_is_taken_as_sql(golden_warehouse):
    result = sql(
        golden_warehouse, "--format", "csv", "-- how many series\nselect count(*) as n from marts.treatment_series"
    )
    assert result.output == "n\n10\n"


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (".shell echo pwned", ".shell: not available here"),
        (".system echo pwned", ".system: not available here"),
        (".output /tmp/out.txt", ".output: not available here"),
        ("select count(*) from read_csv('/etc/passwd');", "refused: a read-only session cannot read or write files"),
        ("copy marts.treatment_series to 'leak.csv';", "refused"),
        ("set enable_external_access = true;", "refused: settings cannot be changed"),
        ("attach 'other.duckdb';", "refused"),
        ("install httpfs;", ""),
    ],
)
def test_the_shell_reads_the_warehouse_and_nothing_else(golden_warehouse, tmp_path, monkeypatch, line, said):
    monkeypatch.chdir(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "shell", "--warehouse", str(golden_warehouse)],
        input=f"{line}\nselect 41 + 1 as answer;\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "pwned" not in completed.stdout
    assert said in completed.stderr
    assert "42" in completed.stdout  # the session goes on
    assert list(tmp_path.iterdir()) == []


def test_the_duckdb_command_line_tool_the_project_installs_reads_the_published_warehouse(golden_warehouse):
    import subprocess
    import sys

    # The warehouse is written in DuckDB 1.5's storage format (pipelines.database.WAREHOUSE_CONFIG), which the
    # duckdb-cli on PyPI reads, whatever DuckDB the pipeline itself runs.
    cli = Path(sys.executable).parent / "duckdb"
    result = subprocess.run(
        [str(cli), "-readonly", "-csv", str(golden_warehouse), "-c", "select count(*) as n from marts.series_outcomes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(golden_warehouse), read_only=True) as con:
        expected = con.execute("select count(*) from marts.series_outcomes").fetchall()[0][0]
    assert result.stdout.split() == ["n", str(expected)]
