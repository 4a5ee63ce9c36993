"""The clinic-against-network funnel plot: the page's clinic is the one named on it (in the legend), and the
axis spans the limits and the clinics, so that a network of large clinics does not lie flat along one line.
The case-mix plot beside it: a director's page numbers the other clinics without naming them."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.figures import Cohort, case_mix_plot, funnel_plot
from pipelines.reports.publishable import publishable


@pytest.fixture(scope="module")
def data(demo_warehouse):
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        return publishable(con, OutcomeRules(), "2026-06-30")


@pytest.mark.parametrize("reader_is_the_director", [True, False])
def test_only_the_pages_clinic_is_named_and_the_others_are_named_on_hover_for_the_owner_alone(
    data, reader_is_the_director
):
    clinic = data.clinics[0]
    figure = funnel_plot(data, Cohort(clinic), clinic if reader_is_the_director else None)
    markers = {trace["name"]: trace for trace in figure.data if "markers" in trace["mode"]}
    name = data.name_of(clinic)
    assert list(markers) == ["other clinics", name]  # the page's clinic drawn last, on top
    # Names on hover, never written beside the dots, where they covered one another.
    assert not [trace for trace in figure.data if "text" in trace["mode"]] and "annotations" not in figure.layout
    others = markers["other clinics"]["text"]
    assert len(others) == len(data.clinics) - 1
    if reader_is_the_director:
        assert set(others) == {"another clinic"}
    else:
        assert sorted(others) == sorted(data.name_of(c) for c in data.clinics[1:])


def test_the_rate_axis_spans_the_limits_and_the_clinics_not_zero_to_one_hundred_percent(data):
    figure = funnel_plot(data, Cohort(data.clinics[0]), None)
    low, high = figure.layout["yaxis"]["range"]
    values = [y for trace in figure.data for y in trace["y"]]
    assert low <= min(values) and max(values) <= high
    assert low > 0 and high < 1  # four clinics of about 500 patients: limits within a few points of the network


def test_a_directors_case_mix_plot_numbers_the_other_clinics_one_to_n_around_its_own(data):
    for clinic in data.clinics:
        figure = case_mix_plot(data, Cohort(clinic), clinic)
        labels = figure.data[0]["y"]
        assert labels.count(data.name_of(clinic)) == 1
        others = [label for label in labels if label != data.name_of(clinic)]
        assert others == [f"another clinic ({n})" for n in range(1, len(data.clinics))]
