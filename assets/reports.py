"""Published reports: written into the working reports folder, swapped in at publication."""

from __future__ import annotations

import shutil

import dagster as dg
import polars as pl

from pipelines.database import key_of
from pipelines.incremental.scope import plan_of
from pipelines.reports.board_pack import write_board_packs
from pipelines.reports.dashboard import write_dashboard
from pipelines.reports.patient_pages import FOLDER as PATIENT_FOLDER
from pipelines.reports.patient_pages import patient_frames, write_patient_pages
from pipelines.reports.publishable import publishable
from pipelines.reports.summary import published_summary, refresh_summary, summary_html, summary_json, summary_lines
from pipelines.resources import Reports, RulesResource, Warehouse, rules_from
from pipelines.stats.dimensions import NETWORK

# The operator's own folder: what a refresh read and rejected, under disclosure control like every page.
OPERATOR_FOLDER = "operator"


def min_cell_size_of(rules: RulesResource, reports: Reports) -> int:
    """Return the smallest count pages may show, refusing one below 2 unless disclosure control is off by name."""
    if not reports.disclosure_control:
        return 0
    if rules.min_cell_size < 2:
        raise ValueError(
            f"min_cell_size {rules.min_cell_size} would publish counts of single patients; use 2 or more, or switch "
            "disclosure control off by name (--no-disclosure-control), which marks every page not for publication"
        )
    return rules.min_cell_size


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
def refresh_summary_report(warehouse: Warehouse, reports: Reports, rules: RulesResource) -> dg.MaterializeResult:
    """The operator's refresh summary page and JSON: files read, rows rejected by reason, series by status.

    Linked from the directors' index, so its counts follow disclosure control; the exact counts are in the
    warehouse (quarantine.file_accounts) and in the command's own output.
    """
    with warehouse.connect() as con:
        summary = refresh_summary(con)
        mode = plan_of(con)[0]
    summary["as_of"] = warehouse.as_of_time.isoformat()
    min_cell_size = min_cell_size_of(rules, reports)
    shown = published_summary(summary, min_cell_size)
    folder = reports.prepare() / OPERATOR_FOLDER
    folder.mkdir(exist_ok=True)
    (folder / "refresh_summary.json").write_text(summary_json(shown))
    page = folder / "refresh_summary.html"
    page.write_text(summary_html(shown, summary["as_of"], min_cell_size, f"refresh {mode}"))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(reports.published_dir / OPERATOR_FOLDER / page.name)),
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
    """The directors' pages: index, network overview and one page per clinic (publishable aggregates only)."""
    min_cell_size_of(rules, reports)
    with warehouse.connect() as con:
        data = publishable(
            con, rules_from(rules), warehouse.as_of_time.strftime("%Y-%m-%d %H:%M"), reports.disclosure_control
        )
    folder = reports.prepare()
    for stale in [*folder.glob("clinic-*.html"), folder / "network.html", folder / "refresh_summary.html"]:
        stale.unlink(missing_ok=True)  # pages of the layout before each reader had a folder
    packs = write_dashboard(folder, data)
    pdfs = write_board_packs(packs, data.as_of, data.period) if reports.board_pack else "board pack PDFs off"
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
            "pages": len(list(folder.rglob("*.html"))),
            "board_pack": pdfs,
            "clinics_without_a_page": len(data.patients.filter(pl.col("dimension") == "clinic")) - len(data.clinics),
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
            "marts.early_non_improvement_worklist",
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
