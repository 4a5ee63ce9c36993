"""The refresh summary: aggregate counts for the operator, never a patient identifier or score."""

from __future__ import annotations

import html
import json
from typing import Any

import duckdb
import polars as pl

from pipelines.reports.disclosure import count_text, note, suppress_cells


def refresh_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Return what a refresh read, rejected and computed, as counts."""

    def rows(sql: str) -> list[dict[str, Any]]:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    return {
        "files": rows("select * from quarantine.file_accounts order by source_file"),
        "rejected_by_reason": rows(
            "select source_file, reason, count(*) as row_count from quarantine.rejected_rows "
            "group by all order by source_file, reason"
        ),
        "patients": con.execute("select count(*) from staging.patients").fetchall()[0][0],
        "series": rows(
            "select series_kind, count(*) as series_count, count(*) filter (where is_completed_induction) "
            "as completed_inductions from marts.treatment_series group by all order by series_kind"
        ),
        "outcomes_by_status": rows(
            "select status, count(*) as outcome_count from marts.series_outcomes group by all order by status"
        ),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Return the summary as short lines for a terminal."""
    lines = []
    for account in summary["files"]:
        kind = "" if account["source_file"].endswith(".csv") else f" ({account['record_type']}s)"
        lines.append(
            f"{account['source_file']}{kind}: "
            f"{account['rows_read']} rows read, {account['rows_accepted']} accepted, "
            f"{account['rows_rejected']} rejected, {account['duplicates_removed']} exact duplicates removed"
        )
    for rejection in summary["rejected_by_reason"]:
        lines.append(f"  rejected from {rejection['source_file']}: {rejection['row_count']} {rejection['reason']}")
    lines.append(f"patients: {summary['patients']}")
    for group in summary["series"]:
        lines.append(
            f"{group['series_kind']} series: {group['series_count']}"
            + (f" ({group['completed_inductions']} completed)" if group["series_kind"] == "induction" else "")
        )
    by_status = {row["status"]: row["outcome_count"] for row in summary["outcomes_by_status"]}
    lines.append(
        f"series outcomes: {sum(by_status.values())}, of which {by_status.get('evaluable', 0)} evaluable"
        + "".join(f", {count} {status}" for status, count in sorted(by_status.items()) if status != "evaluable")
    )
    return lines


REASON_WORDS = {
    "missing_field": "a required field is empty",
    "unparseable_timestamp": "a timestamp is not an ISO 8601 date or date-time",
    "unparseable_number": "a number cannot be read",
    "unknown_instrument": "the instrument is not in the registry",
    "score_out_of_range": "the score is outside the instrument's range",
    "value_out_of_range": "a value is outside its plausible range",
    "future_timestamp": "dated after the refresh's as-of time",
    "implausible_timestamp": "dated before 1900 or before the patient's birth",
    "unknown_patient": "the patient is not among the accepted patients",
    "duplicate_conflict": "the same record sent twice with different values",
    "malformed_row": "the line is not a row (extra values, an unclosed quote, a repeated header)",
    "invalid_identifier": "an id has white space around it",
}


def published_summary(summary: dict[str, Any], min_cell_size: int) -> dict[str, Any]:
    """Return the summary as a page linked from the directors' index may show it (spec §10.8): the counts of
    each file's outcomes, its rejections by reason and the series by status, with small ones hidden (None)
    and a second one wherever a total would reveal them."""

    def hidden(rows: list[dict], count: str, table: list[str]) -> list[dict]:
        if not rows:
            return rows
        frame = pl.DataFrame(rows, infer_schema_length=None)
        return suppress_cells(frame, [table], count, {}, min_cell_size).to_dicts()

    outcomes = [
        {"source_file": a["source_file"], "record_type": a["record_type"], "outcome": outcome, "row_count": a[outcome]}
        for a in summary["files"]
        for outcome in ("rows_accepted", "rows_rejected", "duplicates_removed")
    ]
    shown = {
        (row["source_file"], row["record_type"], row["outcome"]): row["row_count"]
        for row in hidden(outcomes, "row_count", ["source_file", "record_type"])
    }

    def small(value: int | None) -> bool:
        return value is not None and 1 <= value < min_cell_size

    files = [
        {
            **account,
            **{
                o: shown[(account["source_file"], account["record_type"], o)]
                for o in ("rows_accepted", "rows_rejected", "duplicates_removed")
            },
            # A short file (clinics.csv's few rows): its rows, and its lines, which hold its rows, are hidden.
            "rows_read": None if small(account["rows_read"]) else account["rows_read"],
            "lines_read": None
            if small(account["rows_read"]) or small(account.get("lines_read"))
            else account.get("lines_read"),
        }
        for account in summary["files"]
    ]
    return {
        **summary,
        "files": files,
        "rejected_by_reason": hidden(summary["rejected_by_reason"], "row_count", ["source_file"]),
        "outcomes_by_status": hidden(summary["outcomes_by_status"], "outcome_count", []),
        "patients": None if 1 <= summary["patients"] < min_cell_size else summary["patients"],
    }


def summary_json(summary: dict[str, Any]) -> str:
    """Return the summary as JSON text."""
    return json.dumps(summary, indent=2, default=str)


def summary_html(summary: dict[str, Any], refreshed_at: str, min_cell_size: int, mode: str) -> str:
    """Return the operator's page of a refresh: the mode, every file's accounts and its rejections in words.

    It is linked from the directors' index, so its counts are those of published_summary.
    """
    k = min_cell_size
    escape = html.escape
    file_rows = "".join(
        f"<tr><td>{escape(a['source_file'])}</td><td>{escape(a['record_type'])}s</td>"
        f"<td>{'' if a.get('lines_read') is None and a['rows_read'] is not None else count_text(a.get('lines_read'))}"
        f"</td><td>{count_text(a['rows_read'])}</td><td>{count_text(a['rows_accepted'])}</td>"
        f"<td>{count_text(a['rows_rejected'])}</td><td>{count_text(a['duplicates_removed'])}</td></tr>"
        for a in summary["files"]
    )
    reason_rows = "".join(
        f"<tr><td>{escape(r['source_file'])}</td><td>{escape(REASON_WORDS.get(r['reason'], r['reason']))}"
        f" <code>{escape(r['reason'])}</code></td><td>{count_text(r['row_count'])}</td></tr>"
        for r in summary["rejected_by_reason"]
    )
    status_rows = "".join(
        f"<tr><td>{escape(r['status'].replace('_', ' '))}</td><td>{count_text(r['outcome_count'])}</td></tr>"
        for r in summary["outcomes_by_status"]
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}"
        "header{background:#1d3557;color:#fff;padding:1rem 2rem}main{padding:1rem 2rem;max-width:70rem}"
        "table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.5rem;box-shadow:0 1px 3px #0002}"
        "th,td{padding:.35rem .7rem;border-bottom:1px solid #e3e8ef;text-align:right}"
        "th:first-child,td:first-child,td:nth-child(2){text-align:left}th{background:#eef2f7}"
        ".note{color:#5a6b7d;font-size:.85rem}code{color:#5a6b7d}"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Refresh summary</title>"
        f"<style>{style}</style></head><body>"
        + (
            f"<p style='background:#b00020;color:#fff;padding:.5rem 2rem;margin:0'>{escape(note(k))}</p>"
            if k <= 1
            else ""
        )
        + "<header><h1>Refresh summary</h1>"
        f"<div>Data as of {escape(refreshed_at)} · {escape(mode)}</div></header><main>"
        "<h2>Files read</h2><table><tr><th>file</th><th>records</th><th>lines</th><th>rows read</th>"
        f"<th>accepted</th><th>rejected</th><th>exact duplicates</th></tr>{file_rows}</table>"
        + (
            "<h2>Rows rejected, by reason</h2><table><tr><th>file</th><th>reason</th><th>rows</th></tr>"
            f"{reason_rows}</table>"
            if reason_rows
            else "<p>No row was rejected.</p>"
        )
        + f"<h2>Series outcomes by status</h2><table><tr><th>status</th><th>series and instrument pairs</th></tr>"
        f"{status_rows}</table><p>Patients: {count_text(summary['patients'])}.</p>"
        f"<p class='note'>{escape(note(k))} The rejected rows themselves are in quarantine.rejected_rows of the "
        "warehouse.</p></main></body></html>"
    )
