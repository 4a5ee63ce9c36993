"""A clinic whose id holds the separator of a clinic's splits (" / ") never lends its rows to another clinic.

Clinic "North" and clinic "North / East" sit in one network. A clinic's split by
indication is valued "<clinic> / <indication>": without care, "North / East /
depression" reads as one of North's cells, and North's director would see East's
patients as North's own (and disclosure control would judge them in North's table).
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest

from pipelines.demo.generator import write_inbox
from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.disclosure import with_parent
from pipelines.reports.figures import Cohort, trends
from pipelines.reports.publishable import publishable
from pipelines.stats.dimensions import CLINIC_SPLITS, INDICATION
from tests.conftest import Refresh
from tests.reports.test_privacy import append_clinic

NORTH, NORTH_EAST = "North", "North / East"
# (patients, PHQ-9 responders): both large enough that disclosure control shows every count.
SIZES = {NORTH: (40, 20), NORTH_EAST: (30, 15)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("separator")
    write_inbox(root / "inbox", patients=600, clinics=2, seed=5, end_date=date(2026, 6, 30), years=2.0)
    append_clinic(root / "inbox", NORTH, "NO", *SIZES[NORTH])
    append_clinic(root / "inbox", NORTH_EAST, "NE", *SIZES[NORTH_EAST])
    refresh = Refresh(root / "out")
    refresh.ok(root / "inbox", as_of="2026-06-30T00:00:00")
    with duckdb.connect(str(refresh.warehouse), read_only=True) as con:
        return publishable(con, OutcomeRules(), "2026-06-30")


@pytest.mark.parametrize("clinic", [NORTH, NORTH_EAST])
def test_a_clinics_split_by_indication_holds_its_own_patients_only(data, clinic):
    patients, responders = SIZES[clinic]
    depression = (
        Cohort(clinic)
        .of_split(data.response_rates, INDICATION)
        .filter((pl.col("instrument") == "phq9") & (pl.col("series_kind") == "induction"))
    )
    assert depression.select("label", "evaluable_count", "responder_count").rows() == [
        ("depression", patients, responders)
    ]


def test_each_clinics_splits_are_judged_in_its_own_table(data):
    splits = with_parent(data.response_rates).filter(pl.col("dimension") == CLINIC_SPLITS[INDICATION])
    parents = dict(splits.select("dimension_value", "parent").unique().rows())
    norths = {parent for value, parent in parents.items() if value.startswith(NORTH)}
    assert len(norths) == 2  # one table per clinic, not North's holding East's cells


@pytest.mark.parametrize("clinic", [NORTH, NORTH_EAST])
def test_a_clinics_trend_is_drawn_from_its_own_periods(data, clinic):
    figure = trends(data, Cohort(clinic))
    assert figure is not None
    response = next(trace for trace in figure.data if trace.get("name", "").startswith("response"))
    assert len(response["x"]) == 1  # every patient of both clinics started in March 2026: one period each
