"""Shared spec §3: treatment series from infusions."""

from datetime import datetime

from pipelines.outcomes import OutcomeRules
from tests.outcomes.helpers import infusion_frame, series_rows


def test_infusions_fourteen_days_apart_stay_in_one_series():
    rows = series_rows(infusion_frame("2026-01-01", "2026-01-15"))
    assert [r["infusion_count"] for r in rows] == [2]


def test_infusions_fifteen_days_apart_start_a_new_series():
    rows = series_rows(infusion_frame("2026-01-01", "2026-01-16"))
    assert [(r["series_number"], r["infusion_count"]) for r in rows] == [(1, 1), (2, 1)]


def test_series_gap_counts_calendar_days_not_hours():
    # 14 days and 2 hours apart by the clock, 14 by the calendar: one series.
    rows = series_rows(infusion_frame("2026-01-01T23:00:00", "2026-01-15T01:00:00"))
    assert len(rows) == 1
    # 14 days less 2 hours by the clock, 15 by the calendar: two series.
    rows = series_rows(infusion_frame("2026-01-01T01:00:00", "2026-01-16T00:00:00", "2026-01-15T23:00:00"))
    assert [r["infusion_count"] for r in rows] == [3]


def test_series_gap_days_is_configurable():
    rows = series_rows(infusion_frame("2026-01-01", "2026-01-20"), OutcomeRules(series_gap_days=21))
    assert len(rows) == 1


def test_series_start_and_end_are_the_first_and_last_infusion_in_time_order():
    rows = series_rows(infusion_frame("2026-01-09T10:00:00", "2026-01-05T09:00:00", "2026-01-07T11:30:00"))
    assert rows[0]["series_start_at"] == datetime(2026, 1, 5, 9)
    assert rows[0]["series_end_at"] == datetime(2026, 1, 9, 10)


def test_series_numbers_count_from_one_for_each_patient():
    both = (
        infusion_frame("2026-01-01", "2026-03-01", patient="P1")
        .collect()
        .vstack(infusion_frame("2026-02-01", patient="P2").collect())
    )
    rows = series_rows(both.lazy())
    assert [(r["patient_id"], r["series_number"]) for r in rows] == [("P1", 1), ("P1", 2), ("P2", 1)]


def test_series_within_reinduction_gap_is_a_booster_and_after_it_an_induction():
    # Series 2 starts 180 days after series 1 ends: booster. Series 3 starts 181 days after series 2: induction.
    rows = series_rows(infusion_frame("2025-01-01", "2025-06-30", "2025-12-29"))
    assert [r["series_kind"] for r in rows] == ["induction", "booster", "induction"]
    assert [r["booster_interval_days"] for r in rows] == [180, 182, None]


def test_completed_induction_needs_six_infusions_and_an_induction():
    six = ["2026-01-01", "2026-01-03", "2026-01-05", "2026-01-07", "2026-01-09", "2026-01-11"]
    rows = series_rows(infusion_frame(*six))
    assert rows[0]["is_completed_induction"] is True
    rows = series_rows(infusion_frame(*six[:5]))
    assert rows[0]["is_completed_induction"] is False
    # Six boosters in a row are not an induction.
    booster_six = ["2026-03-01", "2026-03-03", "2026-03-05", "2026-03-07", "2026-03-09", "2026-03-11"]
    rows = series_rows(infusion_frame("2026-01-01", *booster_six))
    assert [(r["series_kind"], r["is_completed_induction"]) for r in rows] == [
        ("induction", False),
        ("booster", False),
    ]


def test_booster_interval_counts_days_from_series_end_to_next_start():
    rows = series_rows(infusion_frame("2026-01-01", "2026-01-03T16:00:00", "2026-02-10T08:00:00"))
    assert [r["booster_interval_days"] for r in rows] == [38, None]
