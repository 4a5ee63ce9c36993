"""Published reports: written into the working reports folder, swapped in at publication."""

from __future__ import annotations

import dagster as dg

from assets.tables import key_of
from pipelines.reports.summary import refresh_summary, summary_html, summary_json, summary_lines
from pipelines.resources import Reports, Warehouse


@dg.asset(
    key=["reports", "refresh_summary"],
    group_name="reports",
    deps=[
        key_of("quarantine.file_accounts"),
        key_of("quarantine.rejected_rows"),
        key_of("marts.treatment_series"),
        key_of("marts.series_outcomes"),
    ],
    kinds={"html"},
)
def refresh_summary_report(warehouse: Warehouse, reports: Reports) -> dg.MaterializeResult:
    """The refresh summary page and JSON: rows read and rejected by reason, series, evaluable outcomes."""
    with warehouse.connect() as con:
        summary = refresh_summary(con)
    summary["as_of"] = warehouse.as_of_time.isoformat()
    folder = reports.prepare()
    (folder / "refresh_summary.json").write_text(summary_json(summary))
    page = folder / "refresh_summary.html"
    page.write_text(summary_html(summary, summary["as_of"]))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(reports.published_dir / page.name)),
            "summary": dg.MetadataValue.md("\n".join(f"- {line}" for line in summary_lines(summary))),
        }
    )
