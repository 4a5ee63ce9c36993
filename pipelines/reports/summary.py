"""The refresh summary: aggregate counts for the operator, never a patient identifier or score."""

from __future__ import annotations

import html
import json
from typing import Any

import duckdb


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
        "patients": con.execute("select count(*) from staging.patients").fetchone()[0],
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


def summary_json(summary: dict[str, Any]) -> str:
    """Return the summary as JSON text."""
    return json.dumps(summary, indent=2, default=str)


def summary_html(summary: dict[str, Any], refreshed_at: str) -> str:
    """Return a small self-contained page with the refresh summary (no scripts, no identifiers)."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(summary))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Refresh summary</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}li{margin:.2rem 0}</style>"
        f"</head><body><h1>Refresh summary</h1><p>Data as of {html.escape(refreshed_at)}.</p>"
        f"<ul>{items}</ul></body></html>"
    )
