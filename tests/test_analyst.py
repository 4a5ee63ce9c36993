"""Ad-hoc SQL for analysts: a read-only, documented warehouse, worked examples and exports."""

from __future__ import annotations

import hashlib
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
            expected = con.execute(f"select count(*) from {entry['table']}").fetchone()[0]
            assert frame.height == entry["row_count"] == expected
    assert {entry["table"] for entry in manifest["tables"]} == marts
    assert manifest["refreshed_at"] and manifest["as_of"] == "2026-06-30T00:00:00"


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
