"""The SQL files under sql/: one SELECT per file, file stem = table, folder = schema and Dagster group."""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import Path

import sqlglot
from sqlglot import exp

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
# Layers in build order; a model may read only its own or an earlier layer (or raw and seeds).
LAYERS = ("raw", "seeds", "quarantine", "staging", "intermediate", "marts")
MODEL_SCHEMAS = ("quarantine", "staging", "marts")
SEED_SCHEMA = "seeds"
HEADER_LINE = re.compile(r"--\s*(Title|Grain|Inputs|Rule|Refresh|Materialized):\s*(.*)")
# The optional Refresh line: a table derived row by row from each patient's own rows says so.
PER_PATIENT = "per patient"
# The optional Materialized line: "view" for a model that only filters and renames one table (staging), so
# that its rows are not written twice; the default is a table.
MATERIALIZATIONS = ("table", "view")


@dataclasses.dataclass(frozen=True)
class SqlModel:
    """One table derived by one SELECT, with the header that documents it."""

    schema: str
    name: str
    path: Path
    title: str
    grain: str
    inputs: tuple[str, ...]
    rule: str
    refresh: str = "whole table"
    materialized: str = "table"

    @property
    def is_view(self) -> bool:
        return self.materialized == "view"

    @property
    def is_per_patient(self) -> bool:
        """True when each patient's rows follow from that patient's input rows alone (and the seeds)."""
        return self.refresh.startswith(PER_PATIENT)

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def select(self) -> str:
        return self.path.read_text()

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Return the grain's key: 'one row per (a, b); ...' gives (a, b), 'one row per a' gives (a,)."""
        stated = self.grain.removeprefix("one row per").split(";")[0].strip()
        return tuple(column.strip() for column in stated.strip("()").split(","))

    @property
    def description(self) -> str:
        return f"{self.title}. Grain: {self.grain}. Rule: {self.rule}."


def header_of(path: Path) -> dict[str, str]:
    """Return the Title/Grain/Inputs/Rule (and optional Refresh and Materialized) header of a SQL file; fail naming
    the file when one of the four is missing or the materialization is unknown."""
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = HEADER_LINE.match(line)
        if match:
            header[match.group(1).lower()] = match.group(2).strip()
        elif not line.startswith("--"):
            break
    missing = {"title", "grain", "inputs", "rule"} - header.keys()
    if missing:
        raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
    # "view; why" names the materialization, then says why: the model keeps the name alone.
    header["materialized"] = header.get("materialized", "table").split(";")[0].strip()
    if header["materialized"] not in MATERIALIZATIONS:
        raise ValueError(f"{path}: Materialized must be one of {', '.join(MATERIALIZATIONS)}")
    return header


@cache
def sql_models() -> tuple[SqlModel, ...]:
    """Return every SQL model under sql/, in build order."""
    models = []
    for schema in MODEL_SCHEMAS:
        for path in sorted((SQL_DIR / schema).glob("*.sql")):
            header = header_of(path)
            inputs = tuple(name.strip() for name in header["inputs"].split(",") if name.strip())
            models.append(
                SqlModel(
                    schema,
                    path.stem,
                    path,
                    header["title"],
                    header["grain"],
                    inputs,
                    header["rule"],
                    header.get("refresh", "whole table"),
                    header["materialized"],
                )
            )
    return tuple(models)


def seed_files() -> tuple[Path, ...]:
    """Return the seed CSVs (sql/seeds/*.csv), each loaded as seeds.<stem>."""
    return tuple(sorted((SQL_DIR / SEED_SCHEMA).glob("*.csv")))


def functions_sql() -> str:
    """Return the CREATE MACRO statements every connection runs before table SQL."""
    return (SQL_DIR / "functions.sql").read_text()


def table_references(select: str | exp.Expression) -> list[exp.Table]:
    """Return the schema-qualified tables a SELECT (text or parse) names (CTE names, being unqualified, are left
    out)."""
    tree = sqlglot.parse_one(select, dialect="duckdb") if isinstance(select, str) else select
    return [table for table in tree.find_all(exp.Table) if table.db]


def called_macros(expression: exp.Expression) -> set[str]:
    """Return the names of the functions an expression calls that DuckDB does not know (the project's macros)."""
    return {call.name.lower() for call in expression.find_all(exp.Anonymous)}


@cache
def macro_reads() -> dict[str, frozenset[str]]:
    """Return, for each macro of sql/functions.sql, the tables it reads, directly or through the macros it calls."""
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for statement in sqlglot.parse(functions_sql(), dialect="duckdb"):
        name = statement.this.this.name.lower()  # CREATE MACRO name(...): a function whose "this" is its name
        direct[name] = {f"{t.db}.{t.name}" for t in statement.find_all(exp.Table) if t.db}
        calls[name] = called_macros(statement.expression) & set(direct) - {name}
    reads: dict[str, frozenset[str]] = {}

    def reads_of(name: str) -> frozenset[str]:
        if name not in reads:
            reads[name] = frozenset(direct[name].union(*[reads_of(called) for called in calls[name]]))
        return reads[name]

    return {name: reads_of(name) for name in direct}


def tables_read(select: str) -> set[str]:
    """Return every table a SELECT reads: those it names and those its macros read."""
    tree = sqlglot.parse_one(select, dialect="duckdb")
    named = {f"{table.db}.{table.name}" for table in table_references(tree)}
    macros = macro_reads()
    return named.union(*[macros[name] for name in called_macros(tree) if name in macros])


def header_problems(model: SqlModel) -> list[str]:
    """Return what is wrong with a model's Inputs header: tables read but not listed, listed but not read, and
    inputs from a later layer. An empty list means the header is true."""
    read, listed = tables_read(model.select), set(model.inputs)
    problems = [f"{model.path.name}: reads {table} but its Inputs do not list it" for table in sorted(read - listed)]
    problems += [f"{model.path.name}: Inputs list {table} but it does not read it" for table in sorted(listed - read)]
    position = LAYERS.index(model.schema)
    problems += [
        f"{model.path.name}: reads {table}, of the later layer {table.split('.')[0]}"
        for table in sorted(read | listed)
        if table.split(".")[0] not in LAYERS or LAYERS.index(table.split(".")[0]) > position
    ]
    return problems
