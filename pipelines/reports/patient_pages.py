"""Per-patient pages for clinicians: scores over time with infusions, series and response lines.

Patient-level and identifiable: written only when asked for, into a separate
`patients/` folder, never linked from the directors' pages.
"""

from __future__ import annotations

import html
from pathlib import Path

import duckdb
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from pipelines.reports.pages import INSTRUMENT_LABELS, PAGE_STYLE, PLOTLY_FILE, slug

FOLDER = "patients"
SERIES_COLOURS = {"induction": "rgba(31,119,180,0.10)", "booster": "rgba(255,127,14,0.12)"}


def patient_frames(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Return the rows every patient page needs, for all patients at once."""
    return {
        "patients": con.sql("select patient_id, clinic_id, primary_indication from staging.patients").pl(),
        "scores": con.sql(
            "select a.patient_id, a.instrument, a.administered_at, a.score from staging.assessments a "
            "join seeds.instruments i using (instrument) order by 1, 2, 3"
        ).pl(),
        "infusions": con.sql("select patient_id, infused_at, series_number from intermediate.infusion_sessions").pl(),
        "series": con.sql(
            "select patient_id, series_number, series_kind, series_start_at, series_end_at from marts.treatment_series"
        ).pl(),
        "baselines": con.sql(
            "select b.patient_id, b.series_number, b.instrument, b.baseline_score, i.response_pct, "
            "s.series_start_at, s.series_end_at from intermediate.series_baselines b "
            "join seeds.instruments i using (instrument) "
            "join marts.treatment_series s using (patient_id, series_number) "
            "where b.baseline_score is not null"
        ).pl(),
        "early_worklist": con.sql(
            "select clinic_id, patient_id, instrument, infusion_count, baseline_score, end_score, end_pct_change "
            "from marts.early_non_improvement_worklist"
        ).pl(),
    }


def early_worklist_section(worklist: pl.DataFrame, pages: set[str]) -> str:
    """Return the index's list of inductions in progress that the early check flags (spec §10.4)."""
    if worklist.is_empty():
        return "<h2>Early non-improvement</h2><p>No induction in progress is flagged by the early check.</p>"
    rows = []
    for row in worklist.iter_rows(named=True):
        patient = html.escape(row["patient_id"])
        link = f"<a href='{slug(row['patient_id'])}.html'>{patient}</a>" if row["patient_id"] in pages else patient
        rows.append(
            f"<tr><td>{html.escape(row['clinic_id'])}</td><td>{link}</td>"
            f"<td>{html.escape(INSTRUMENT_LABELS.get(row['instrument'], row['instrument']))}</td>"
            f"<td>{row['infusion_count']}</td><td>{row['baseline_score']:g}</td><td>{row['end_score']:g}</td>"
            f"<td>{row['end_pct_change']:+.0f}%</td></tr>"
        )
    return (
        "<h2>Early non-improvement</h2><p>Inductions in progress whose first score after the early check's "
        "infusions improved less than the early improvement threshold (spec §10.4): consider a review of the "
        "plan.</p><table><thead><tr><th>Clinic</th><th>Patient</th><th>Instrument</th><th>Infusions so far</th>"
        f"<th>Baseline</th><th>Latest in window</th><th>Change</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def patient_figure(
    scores: pl.DataFrame, infusions: pl.DataFrame, series: pl.DataFrame, baselines: pl.DataFrame
) -> go.Figure:
    """Return one subplot per instrument: scores, infusion markers, series shading, baseline and response lines."""
    instruments = scores["instrument"].unique(maintain_order=True).to_list() or ["phq9"]
    figure = make_subplots(
        rows=len(instruments),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[INSTRUMENT_LABELS.get(i, i) for i in instruments],
    )
    for row, instrument in enumerate(instruments, start=1):
        mine = scores.filter(pl.col("instrument") == instrument)
        figure.add_trace(
            go.Scatter(
                x=mine["administered_at"].to_list(),
                y=mine["score"].to_list(),
                mode="lines+markers",
                name=INSTRUMENT_LABELS.get(instrument, instrument),
                line=dict(color="#1d3557"),
            ),
            row=row,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=infusions["infused_at"].to_list(),
                y=[0] * infusions.height,
                mode="markers",
                marker=dict(symbol="triangle-up", size=9, color="#d62728"),
                name="infusion",
                showlegend=row == 1,
            ),
            row=row,
            col=1,
        )
        for line in baselines.filter(pl.col("instrument") == instrument).iter_rows(named=True):
            threshold = line["baseline_score"] * (1 - line["response_pct"] / 100)
            for value, dash, name in (
                (line["baseline_score"], "dash", "baseline"),
                (threshold, "dot", "response threshold"),
            ):
                figure.add_trace(
                    go.Scatter(
                        x=[line["series_start_at"], line["series_end_at"]],
                        y=[value, value],
                        mode="lines",
                        line=dict(color="#555", dash=dash, width=1),
                        name=name,
                        showlegend=False,
                    ),
                    row=row,
                    col=1,
                )
    for period in series.iter_rows(named=True):
        figure.add_vrect(
            x0=period["series_start_at"],
            x1=period["series_end_at"],
            fillcolor=SERIES_COLOURS[period["series_kind"]],
            line_width=0,
        )
    figure.update_layout(
        template="plotly_white",
        height=260 * len(instruments) + 80,
        margin=dict(l=50, r=20, t=40, b=40),
        legend=dict(orientation="h"),
    )
    return figure


def write_patient_pages(folder: Path, frames: dict[str, pl.DataFrame]) -> int:
    """Write patients/index.html and one page per patient; return the number of patient pages."""
    target = folder / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    grouped = {
        name: dict(frame.partition_by("patient_id", as_dict=True, include_key=True).items())
        for name, frame in frames.items()
        if name not in ("patients", "early_worklist")
    }

    def rows_of(name: str, patient: str) -> pl.DataFrame:
        return grouped[name].get((patient,), frames[name].clear())

    links = []
    for patient in frames["patients"].sort("clinic_id", "patient_id").iter_rows(named=True):
        patient_id = patient["patient_id"]
        figure = patient_figure(
            rows_of("scores", patient_id),
            rows_of("infusions", patient_id),
            rows_of("series", patient_id),
            rows_of("baselines", patient_id),
        )
        file_name = f"{slug(patient_id)}.html"
        title = f"Patient {patient_id} — {patient['clinic_id']}, {patient['primary_indication']}"
        body = figure.to_html(full_html=False, include_plotlyjs=False, div_id="figure-patient")
        (target / file_name).write_text(
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<script src='../{PLOTLY_FILE}'></script><style>{PAGE_STYLE}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><div>For clinicians: identifiable patient data. "
            f"<a href='index.html'>All patients</a></div></header><main><div class='card'>{body}</div>"
            "<p class='note'>Blue bands: induction series; orange: boosters; red triangles: infusions; dashed: "
            "the series baseline; dotted: the response threshold.</p></main></body></html>"
        )
        links.append(
            f"<li><a href='{file_name}'>{html.escape(patient_id)}</a> ({html.escape(patient['clinic_id'])})</li>"
        )
    (target / "index.html").write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Patients</title><style>{PAGE_STYLE}"
        "</style></head><body><header><h1>Patients (for clinicians)</h1><div>Identifiable data: not for "
        f"publication.</div></header><main>"
        f"{early_worklist_section(frames['early_worklist'], set(frames['patients']['patient_id']))}"
        f"<h2>All patients</h2><ul>{''.join(links)}</ul></main></body></html>"
    )
    return len(links)
