"""The house's one-way layers, checked by machine: SQL reads only its own or earlier layers, as its header says,
and Python modules import only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest

from pipelines.sql_models import SqlModel, functions_sql, header_of, header_problems, sql_models, tables_read
from pipelines.stats import dimensions

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", sql_models(), ids=lambda model: model.table)
def test_each_sql_header_lists_exactly_the_tables_its_sql_reads_and_none_of_a_later_layer(model):
    assert header_problems(model) == []


def model_with(tmp_path: Path, schema: str, header_inputs: str, select: str) -> SqlModel:
    path = tmp_path / schema / "example.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"-- Title: t\n-- Grain: one row per x\n-- Inputs: {header_inputs}\n-- Rule: r\n{select}\n")
    header = header_of(path)
    inputs = tuple(name.strip() for name in header["inputs"].split(","))
    return SqlModel(schema, "example", path, "t", "one row per x", inputs, "r")


def test_a_header_that_omits_a_table_the_sql_reads_is_caught(tmp_path):
    model = model_with(
        tmp_path,
        "marts",
        "marts.treatment_series",
        "select * from marts.treatment_series join staging.patients using (patient_id)",
    )
    assert header_problems(model) == ["example.sql: reads staging.patients but its Inputs do not list it"]


def test_a_header_that_lists_a_table_the_sql_does_not_read_is_caught(tmp_path):
    model = model_with(
        tmp_path,
        "marts",
        "marts.treatment_series, staging.infusions",
        "with staging_rows as (select 1 as x) select * from marts.treatment_series, staging_rows",
    )
    assert header_problems(model) == ["example.sql: Inputs list staging.infusions but it does not read it"]


def test_sql_reading_a_later_layer_is_caught_even_when_its_header_says_so(tmp_path):
    model = model_with(tmp_path, "quarantine", "staging.patients", "select patient_id from staging.patients")
    assert header_problems(model) == ["example.sql: reads staging.patients, of the later layer staging"]


def test_tables_read_through_a_macro_count_as_read():
    # range_failure looks plausible ranges up in seeds.value_ranges (sql/functions.sql).
    assert tables_read("select range_failure('infusions', 'dose_mg_per_kg', x) from raw.infusions") == {
        "raw.infusions",
        "seeds.value_ranges",
    }


# Python: a package may import its own modules and those of lower floors, never a higher one. pipelines/
# definitions.py is the top of the house (the one Definitions object), the only module of pipelines/ that
# imports assets; cli.py, which runs it, stands above it.
FLOORS = {
    "pipelines.outcomes": 0,
    "pipelines.stats": 0,
    "pipelines.sql_models": 0,
    "pipelines.demo": 0,
    "pipelines.database": 1,
    "pipelines.publication": 1,
    "pipelines.dictionary": 2,
    "pipelines.ingest": 3,
    "pipelines.incremental": 4,
    "pipelines.reports": 5,
    "pipelines.analyst": 5,
    "pipelines.resources": 6,
    "assets": 7,
    "pipelines.schedules": 8,
    "pipelines.progress": 8,
    "pipelines.sensors": 8,
    "pipelines.definitions": 9,
    "pipelines.cli": 10,
}


def floor_of(module: str) -> tuple[str, int]:
    for room in sorted(FLOORS, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room, FLOORS[room]
    raise AssertionError(f"{module} is on no floor: add it to FLOORS")


def project_imports(path: Path) -> list[str]:
    """Return the project modules a file imports, outside `if TYPE_CHECKING:` blocks (annotations only)."""
    tree = ast.parse(path.read_text())
    checking_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.split(".")[0] in ("pipelines", "assets")]


def modules():
    for path in sorted([*(ROOT / "pipelines").rglob("*.py"), *(ROOT / "assets").rglob("*.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module in ("pipelines", "assets"):
            continue
        yield module, path


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda value: str(value))
def test_every_import_points_down(module, path):
    room, floor = floor_of(module)
    upward = [
        name
        for name in project_imports(path)
        if floor_of(name)[1] > floor or (floor_of(name)[1] == floor and floor_of(name)[0] != room)
    ]
    assert upward == [], f"{module} (floor {floor}) imports from above or beside it"


def test_no_module_of_pipelines_but_the_definitions_imports_assets():
    importers = {
        module
        for module, path in modules()
        if module.startswith("pipelines.") and any(name.split(".")[0] == "assets" for name in project_imports(path))
    }
    assert importers == {"pipelines.definitions"}


def test_the_sql_marts_name_their_cohorts_in_the_vocabulary_of_the_statistics():
    con = duckdb.connect()
    con.execute(functions_sql().split("create or replace macro value_range")[0])  # macros without a seed table
    con.execute(functions_sql()[functions_sql().index("create or replace macro cohorts_of") :])
    cohorts = con.execute("select unnest(cohorts_of('c1', 'depression'), recursive := true)").fetchall()
    assert [dimension for dimension, _ in cohorts] == list(dimensions.SQL_DIMENSIONS)
    assert cohorts[0] == (dimensions.NETWORK, dimensions.NETWORK_VALUE)
    assert set(dimensions.SQL_DIMENSIONS) <= set(dimensions.DIMENSIONS)


def test_settings_and_the_rules_resource_carry_every_clinical_parameter_as_declared():
    from pipelines.outcomes.rules import OutcomeRules
    from pipelines.resources import RulesResource, Settings

    for model in (Settings, RulesResource):
        for name, field in OutcomeRules.model_fields.items():
            assert model.model_fields[name].default == field.default
            assert model.model_fields[name].description == field.description
