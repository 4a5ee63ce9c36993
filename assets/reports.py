"""Published reports: written into the working reports folder, swapped in at publication."""

from __future__ import annotations

import shutil

import dagster as dg
import polars as pl

from pipelines.database import key_of
from pipelines.reports.dashboard import dashboard_data, write_dashboard
from pipelines.reports.patient_pages import FOLDER as PATIENT_FOLDER
from pipelines.reports.patient_pages import patient_frames, write_patient_pages
from pipelines.reports.summary import refresh_summary, summary_html, summary_json, summary_lines
from pipelines.resources import Reports, RulesResource, Warehouse, rules_from
from pipelines.stats.dimensions import NETWORK


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


DASHBOARD_INPUTS = [
    "marts.response_rates",
    "marts.relief_survival",
    "marts.relief_summary",
    "marts.trajectories",
    "marts.end_change_quantiles",
    "marts.completion_funnel",
    "marts.booster_intervals",
    "marts.safety_summary",
    "marts.dissociation_by_infusion_number",
    "marts.measurement_adherence",
    "marts.series_outcomes",
    "quarantine.rejected_rows",
    "staging.patients",
]


@dg.asset(
    key=["reports", "dashboard"],
    group_name="reports",
    deps=[key_of(table) for table in DASHBOARD_INPUTS],
    kinds={"plotly", "html"},
)
def dashboard(warehouse: Warehouse, reports: Reports, rules: RulesResource) -> dg.MaterializeResult:
    """The directors' pages: index, network overview and one page per clinic (aggregates only)."""
    with warehouse.connect() as con:
        data = dashboard_data(con, rules_from(rules), warehouse.as_of_time.strftime("%Y-%m-%d %H:%M"))
    folder = reports.prepare()
    for stale in folder.glob("clinic-*.html"):
        stale.unlink()  # a clinic that left the network keeps no page
    pages = write_dashboard(folder, data)
    network = data.response_rates.filter(
        (pl.col("dimension") == NETWORK) & (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
    )
    headline = (
        f"PHQ-9 response after induction: {network['response_rate'][0]:.0%} of {network['evaluable_count'][0]} "
        "evaluable series"
        if network.height and network["response_rate"][0] is not None
        else "no PHQ-9 inductions"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(reports.published_dir / "index.html")),
            "pages": len(pages),
            "summary": dg.MetadataValue.md(f"- {len(data.clinics)} clinic pages and a network overview\n- {headline}"),
        }
    )


@dg.asset(
    key=["reports", "patient_pages"],
    group_name="reports",
    deps=[
        key_of(t)
        for t in (
            "staging.assessments",
            "staging.patients",
            "marts.treatment_series",
            "intermediate.series_baselines",
            "intermediate.infusion_sessions",
        )
    ],
    kinds={"plotly", "html"},
)
def patient_pages(warehouse: Warehouse, reports: Reports) -> dg.MaterializeResult:
    """Per-patient pages for clinicians in reports/patients/: written only when patient_pages is on."""
    folder = reports.prepare()
    shutil.rmtree(folder / PATIENT_FOLDER, ignore_errors=True)  # never publish a stale or unwanted copy
    if not reports.patient_pages:
        return dg.MaterializeResult(metadata={"pages": 0, "note": "off (set OUTCOMES_PATIENT_PAGES=true to write)"})
    with warehouse.connect() as con:
        count = write_patient_pages(folder, patient_frames(con))
    return dg.MaterializeResult(
        metadata={"pages": count, "path": dg.MetadataValue.path(str(reports.published_dir / PATIENT_FOLDER))}
    )
