"""The directors' pages: the publishable aggregates -> figures -> self-contained HTML pages.

Pages read pipelines.reports.publishable only (aggregates after disclosure
control; their cost does not grow with patients), draw figures from
pipelines.reports.figures, and ship plotly.js once beside them so that they
open from disk with no network.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import polars as pl
from plotly.offline import get_plotlyjs

from pipelines.reports import figures as fig
from pipelines.reports.disclosure import note
from pipelines.reports.figures import Cohort, escaped
from pipelines.reports.pages import INSTRUMENT_LABELS, PAGE_STYLE, PLOTLY_FILE
from pipelines.reports.publishable import SUICIDALITY_WINDOW_DAYS, Publishable
from pipelines.stats.dimensions import CLINIC

HEADLINE_INSTRUMENTS = ("phq9", "nrs_pain")
LEAGUE_SCRIPT = """
document.querySelectorAll('table.league th').forEach((header, column) => header.addEventListener('click', () => {
  const body = header.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const ascending = header.dataset.order !== 'asc';
  header.dataset.order = ascending ? 'asc' : 'desc';
  const key = row => { const v = row.cells[column].dataset.sort; return v === undefined ? '' : v; };
  rows.sort((a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return ascending ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}));
"""
EXTRA_STYLE = """
.banner{background:#b00020;color:#fff;padding:.5rem 2rem;font-weight:600}
.tile .network{color:#5a6b7d;font-size:.85rem;margin-top:.25rem}
table.league{border-collapse:collapse;background:#fff;width:100%;font-size:.9rem;box-shadow:0 1px 3px #0002}
table.league th,table.league td{padding:.4rem .6rem;border-bottom:1px solid #e3e8ef;text-align:right}
table.league th:first-child,table.league td:first-child{text-align:left}
table.league th{cursor:pointer;background:#eef2f7}table.league tr.benchmark td{font-style:italic;color:#5a6b7d}
@media print{body{background:#fff}.grid{display:block}main{max-width:none}
.card{break-inside:avoid;page-break-inside:avoid;margin:0 0 12px;box-shadow:none;border:1px solid #d8dee6}
.tiles,table.league{break-inside:avoid}header{padding:.5rem 1rem}}
"""


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"95% CI {percent(low)}–{percent(high)}"


def count_text(value: int | None, min_cell_size: int) -> str:
    return f"fewer than {min_cell_size}" if value is None else f"{value:,}"


def headline_rates(data: Publishable, cohort: Cohort) -> pl.DataFrame:
    return cohort.of_whole(data.response_rates).filter(pl.col("series_kind") == "induction")


def clinic_rank(data: Publishable, instrument: str, measure: str, clinic: str) -> str:
    """Return "2nd of 4 clinics" for a clinic's rate among the clinics whose rate is shown, or ""."""
    rates = data.response_rates.filter(
        (pl.col("dimension") == CLINIC)
        & pl.col("dimension_value").is_in(data.clinics)
        & (pl.col("instrument") == instrument)
        & (pl.col("series_kind") == "induction")
        & pl.col(f"{measure}_rate").is_not_null()
    ).sort(f"{measure}_rate", descending=True)
    names = rates["dimension_value"].to_list()
    if clinic not in names or len(names) < 2:
        return ""
    place = names.index(clinic) + 1
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(place if place < 20 else place % 10, "th")
    return f"{place}{suffix} of {len(names)} clinics"


def tiles(data: Publishable, cohort: Cohort) -> str:
    """Headline tiles: the cohort's figure, with the network's beside it on a clinic's page."""
    k = data.min_cell_size
    network = Cohort()
    patients = cohort.of_whole(data.patients)
    cards = [("patients treated", count_text(patients["patient_count"][0] if patients.height else None, k), "")]
    funnel = cohort.of_whole(data.completion_funnel).sort("infusion_number")
    if funnel.height:
        cards.append(("inductions started", count_text(funnel["inductions_reaching"][0], k), ""))
        target = data.rules.induction_target_infusions
        reached = funnel.filter(pl.col("infusion_number") <= target).tail(1)
        if reached.height:
            cards.append((f"reach infusion {reached['infusion_number'][0]}", percent(reached["share_reaching"][0]), ""))
    for instrument in HEADLINE_INSTRUMENTS:
        row = headline_rates(data, cohort).filter(pl.col("instrument") == instrument)
        if not row.height:
            continue
        mine = row.row(0, named=True)
        theirs = headline_rates(data, network).filter(pl.col("instrument") == instrument)
        label = INSTRUMENT_LABELS[instrument]
        for measure in ("response", "remission"):
            beside = ""
            if cohort.clinic is not None and theirs.height:
                other = theirs.row(0, named=True)
                rank = clinic_rank(data, instrument, measure, cohort.clinic)
                beside = f"network {percent(other[f'{measure}_rate'])}" + (f" · {rank}" if rank else "")
            caption = f"{label} {measure} after induction"
            ci = interval(mine[f"{measure}_ci_low"], mine[f"{measure}_ci_high"])
            cards.append((f"{caption} ({ci})" if ci else caption, percent(mine[f"{measure}_rate"]), beside))
    relief = cohort.of_whole(data.relief_summary).filter(
        (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
    )
    if relief.height:
        r = relief.row(0, named=True)
        if r["relapse_count"] is None:
            median = "—"
        elif r["median_relief_days"] is None:
            median = "not reached"
        else:
            median = f"{r['median_relief_days']} days"
        low = r["median_ci_low"] if r["median_ci_low"] is not None else "—"
        high = r["median_ci_high"] if r["median_ci_high"] is not None else "not reached"
        cards.append((f"median relief, PHQ-9 (95% CI {low}–{high})", median, ""))
    suicidality = cohort.of_whole(data.suicidality)
    if suicidality.height and suicidality["scored_count"][0]:
        row = suicidality.row(0, named=True)
        shown = "—" if row["flagged_rate"] is None else percent(row["flagged_rate"])
        scored = count_text(row["scored_count"], k)
        label = (
            f"PHQ-9 item 9 (thoughts of self-harm) positive at the latest PHQ-9 of the last "
            f"{SUICIDALITY_WINDOW_DAYS} days, of {scored} patients scored; clinicians have the worklist"
        )
        cards.append((label, shown, ""))
    return "".join(
        f"<div class='tile'><div class='value'>{html.escape(value)}</div><div class='label'>{html.escape(label)}"
        f"</div>{f'<div class=network>{html.escape(beside)}</div>' if beside else ''}</div>"
        for label, value, beside in cards
    )


def safety_text(data: Publishable, cohort: Cohort) -> str:
    """The safety line: each rate over the infusions that recorded it, with that coverage (spec §10.7)."""
    rows = cohort.of_whole(data.safety)
    if not rows.height:
        return ""
    s = rows.row(0, named=True)
    sbp, dbp, spo2 = data.rules.sbp_alert, data.rules.dbp_alert, data.rules.spo2_alert

    def rate(name: str, value: float | None, recorded: int, infusions: int | None) -> str:
        if not recorded:
            return f"{name}: not recorded"
        if value is None or not infusions:
            return f"{name}: not shown (too few)"
        return f"{name}: {percent(value)} (recorded in {recorded / infusions:.0%} of infusions)"

    parts = [
        rate(
            f"hypertensive sessions (≥{sbp:g}/{dbp:g} mmHg)",
            s["hypertensive_rate"],
            s["bp_recorded_count"],
            s["infusion_count"],
        ),
        rate(f"desaturation below {spo2:g}%", s["desaturation_rate"], s["spo2_recorded_count"], s["infusion_count"]),
    ]
    if s["bp_recorded_count"] and s["mean_systolic_rise"] is not None:
        parts.append(f"mean systolic rise {s['mean_systolic_rise']:.0f} mmHg")
    if not s["adverse_events_recorded_count"]:
        parts.append("adverse events: not recorded")
    return "Safety — " + "; ".join(parts) + "."


def adherence_text(data: Publishable, cohort: Cohort) -> str:
    adherence = cohort.of_whole(data.adherence)
    if not adherence.height or adherence["adherence_rate"][0] is None:
        return ""
    return f"Measurement adherence (infusions with a pre-infusion score): {percent(adherence['adherence_rate'][0])}."


def league_table(data: Publishable) -> str:
    """Clinics side by side on the network page, sortable, with the network median and 75th percentile."""
    k = data.min_cell_size
    rows = []
    for clinic in data.clinics:
        cohort = Cohort(clinic)
        patients = cohort.of_whole(data.patients)
        funnel = cohort.of_whole(data.completion_funnel).sort("infusion_number")
        target = funnel.filter(pl.col("infusion_number") <= data.rules.induction_target_infusions).tail(1)
        rates = headline_rates(data, cohort).filter(pl.col("instrument") == "phq9")
        rate = rates.row(0, named=True) if rates.height else {}
        relief = cohort.of_whole(data.relief_summary).filter(
            (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
        )
        median = relief["median_relief_days"][0] if relief.height and relief["relapse_count"][0] is not None else None
        rows.append(
            {
                "clinic": clinic,
                "patients": patients["patient_count"][0] if patients.height else None,
                "inductions": funnel["inductions_reaching"][0] if funnel.height else None,
                "completion": target["share_reaching"][0] if target.height else None,
                "response": rate.get("response_rate"),
                "response_ci": interval(rate.get("response_ci_low"), rate.get("response_ci_high")),
                "remission": rate.get("remission_rate"),
                "remission_ci": interval(rate.get("remission_ci_low"), rate.get("remission_ci_high")),
                "relief": median,
            }
        )
    if not rows:
        return ""
    frame = pl.DataFrame(rows, infer_schema_length=None)

    def benchmark(column: str, quantile: float) -> float | None:
        values = frame[column].drop_nulls()
        return values.quantile(quantile, interpolation="linear") if values.len() else None

    def cell(text: str, sort) -> str:
        sort_value = "" if sort is None else sort
        return f"<td data-sort='{html.escape(str(sort_value))}'>{html.escape(text)}</td>"

    body = []
    for row in rows:
        body.append(
            "<tr>"
            + cell(row["clinic"], row["clinic"].lower())
            + cell(count_text(row["patients"], k), row["patients"])
            + cell(count_text(row["inductions"], k), row["inductions"])
            + cell(percent(row["completion"]), row["completion"])
            + cell(f"{percent(row['response'])} {row['response_ci']}".strip(), row["response"])
            + cell(f"{percent(row['remission'])} {row['remission_ci']}".strip(), row["remission"])
            + cell("—" if row["relief"] is None else f"{row['relief']} days", row["relief"])
            + "</tr>"
        )
    footer = []
    for name, quantile in (("network median", 0.5), ("network 75th percentile", 0.75)):
        completion, response, remission, relief = (
            benchmark(c, quantile) for c in ("completion", "response", "remission", "relief")
        )
        footer.append(
            f"<tr class='benchmark'><td>{name} of clinics</td><td></td><td></td><td>{percent(completion)}</td>"
            f"<td>{percent(response)}</td><td>{percent(remission)}</td>"
            f"<td>{'—' if relief is None else f'{relief:.0f} days'}</td></tr>"
        )
    target = data.rules.induction_target_infusions
    headers = [
        "clinic",
        "patients",
        "inductions",
        f"reach infusion {target}",
        "PHQ-9 response",
        "PHQ-9 remission",
        "median relief (PHQ-9)",
    ]
    return (
        "<div class='card'><h3>Clinics side by side (click a heading to sort; benchmarks: the median and 75th "
        "percentile of the clinics' own figures)</h3><table class='league'><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody><tfoot>"
        + "".join(footer)
        + "</tfoot></table></div>"
    )


def rules_note(data: Publishable) -> str:
    """The page note, built from the rules in force."""
    rules = data.rules
    return (
        f"Rates and curves count evaluable series: a baseline within {rules.baseline_window_days} days before the "
        f"first infusion and a follow-up within {rules.response_window_days} days after the last. Response is a "
        "reduction from baseline of at least the instrument's response threshold (50% on mood scales, 30% on pain "
        "scales and PCL-5); remission is an end score at or below the instrument's cut-off. A new series starts "
        f"after {rules.series_gap_days} days without an infusion; an induction is completed at "
        f"{rules.induction_target_infusions} infusions. {note(data.min_cell_size)}"
    )


def figure_html(figure: fig.Figure | None, name: str, empty: str) -> str:
    if figure is None:
        return f"<div class='card'><p class='empty' data-empty-figure='{name}'>{html.escape(empty)}</p></div>"
    # The title goes above the figure in HTML, leaving the plot's top edge to the instrument menu.
    title = figure.title
    figure.layout.pop("title", None)
    figure.layout["margin"] = {**figure.layout.get("margin", {}), "t": 40}
    body = figure.to_html(div_id=f"figure-{name}")
    return f"<div class='card'><h3>{html.escape(title)}</h3>{body}</div>"


def banner(data: Publishable) -> str:
    return "" if data.disclosure_control else f"<div class='banner'>{html.escape(note(0))}</div>"


def navigation(data: Publishable, reader: str | None) -> str:
    """Links within one reader's folder: the network owner's names every clinic; a clinic's, only its own."""
    links = ["<a href='index.html'>Index</a>", "<a href='network.html'>Network</a>"]
    clinics = data.clinics if reader is None else [reader]
    links += [f"<a href='{Cohort(c).file_name}'>{escaped(c)}</a>" for c in clinics]
    return " ".join(links)


def page_html(data: Publishable, cohort: Cohort, reader: str | None = None) -> str:
    """Return one cohort's page for one reader: the network owner (reader None) or a clinic's director, who
    sees the network as a benchmark with no other clinic named."""
    too_few = f"Too few patients to show without revealing fewer than {data.min_cell_size}."
    figures = [
        ("trends", fig.trends(data, cohort)),
        ("relief-depression", fig.relief_curves(data, cohort, fig.MOOD_INSTRUMENTS, "depression and mood")),
        ("relief-pain", fig.relief_curves(data, cohort, fig.PAIN_INSTRUMENTS, "pain")),
        ("trajectory-depression", fig.trajectory(data, cohort, fig.MOOD_INSTRUMENTS, "depression and mood")),
        ("trajectory-pain", fig.trajectory(data, cohort, fig.PAIN_INSTRUMENTS, "pain")),
        ("waterfall", fig.waterfall(data, cohort)),
        ("completion-funnel", fig.completion_funnel(data, cohort)),
        ("booster-intervals", fig.booster_intervals(data, cohort, reader)),
    ]
    if cohort.clinic is not None:
        figures.append(("clinic-vs-network", fig.funnel_plot(data, cohort, reader)))
    figures += [
        ("adverse-events", fig.safety_events(data, cohort)),
        ("dissociation", fig.dissociation(data, cohort)),
        ("statuses", fig.series_statuses(data, cohort)),
    ]
    cards = "".join(figure_html(figure, name, too_few) for name, figure in figures)
    period = f"Series started {html.escape(data.period)}. " if data.period else ""
    league = league_table(data) if cohort.clinic is None and reader is None else ""
    title = cohort.title if cohort.clinic is not None or reader is None else "The network, as a benchmark"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} — ketamine infusion outcomes</title>
<script src="{PLOTLY_FILE}"></script><style>{PAGE_STYLE}{EXTRA_STYLE}</style></head>
<body>{banner(data)}<header><h1>{html.escape(title)}</h1><div>{period}Data as of {html.escape(data.as_of)}.
{navigation(data, reader)}</div></header>
<main><section class="tiles">{tiles(data, cohort)}</section>
<p>{html.escape(safety_text(data, cohort))} {html.escape(adherence_text(data, cohort))}</p>
{league}
<section class="grid">{cards}</section>
<p class="note">{html.escape(rules_note(data))}</p></main><script>{LEAGUE_SCRIPT}</script></body></html>
"""


NETWORK_FOLDER = "network"
CLINICS_FOLDER = "clinics"


def clinic_folder(clinic: str) -> str:
    """The folder of one clinic's director, named like its page (a readable slug and a digest of the id)."""
    return f"{CLINICS_FOLDER}/{Cohort(clinic).file_name.removeprefix('clinic-').removesuffix('.html')}"


def index_html(data: Publishable, reader: str | None) -> str:
    """A reader's index: the network owner's lists every clinic; a clinic director's, their clinic and the
    network benchmark."""
    clinics = data.clinics if reader is None else [reader]
    links = "".join(f"<li><a href='{Cohort(c).file_name}'>{escaped(c)}</a></li>" for c in clinics)
    network = "Network overview" if reader is None else "The network, as a benchmark"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ketamine infusion outcomes</title>
<style>{PAGE_STYLE}{EXTRA_STYLE}</style></head><body>{banner(data)}<header><h1>Ketamine infusion outcomes</h1>
<div>Data as of {html.escape(data.as_of)}</div></header>
<main><ul><li><a href="network.html">{network}</a></li></ul><h2>Clinics</h2><ul>{links}</ul>
<p class="note">{html.escape(note(data.min_cell_size))}</p></main></body></html>
"""


def folders_html(data: Publishable, folders: dict[str, str]) -> str:
    """The operator's map of the reports folder: which folder to hand to which reader."""
    items = "".join(
        f"<li><a href='{html.escape(path)}/index.html'>{html.escape(who)}</a>: <code>{html.escape(path)}/</code></li>"
        for who, path in folders.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ketamine infusion outcomes: reports</title>
<style>{PAGE_STYLE}{EXTRA_STYLE}</style></head><body>{banner(data)}<header><h1>Reports, by reader</h1>
<div>Data as of {html.escape(data.as_of)}</div></header><main>
<p>Each folder holds everything one reader may see and nothing more: hand a clinic's director their clinic's
folder, the network owner the network folder. A clinic's folder names no other clinic.</p><ul>{items}
<li><a href='operator/refresh_summary.html'>The operator</a>: <code>operator/</code> (files read, rows rejected)</li>
</ul><p class="note">{html.escape(note(data.min_cell_size))}</p></main></body></html>
"""


def write_dashboard(folder: Path, data: Publishable) -> dict[Path, Path]:
    """Write each reader's folder: network/ (the network owner: every clinic named) and clinics/<clinic>/ (its
    director: its page and the network as a benchmark), each with plotly.js beside its pages; and index.html,
    the operator's map of the folders. Return each board-pack page with the PDF it prints to: the network's
    page for the network owner, each clinic's page for its director."""
    folder.mkdir(parents=True, exist_ok=True)
    plotly = get_plotlyjs()
    packs: dict[Path, Path] = {}
    readers: dict[str | None, Path] = {None: folder / NETWORK_FOLDER}
    readers.update({clinic: folder / clinic_folder(clinic) for clinic in data.clinics})
    shutil.rmtree(folder / CLINICS_FOLDER, ignore_errors=True)  # a clinic that left the network keeps no folder
    shutil.rmtree(folder / NETWORK_FOLDER, ignore_errors=True)
    for reader, target in readers.items():
        target.mkdir(parents=True)
        (target / PLOTLY_FILE).write_text(plotly)
        (target / "index.html").write_text(index_html(data, reader))
        cohorts = [Cohort(), *[Cohort(clinic) for clinic in (data.clinics if reader is None else [reader])]]
        for cohort in cohorts:
            path = target / cohort.file_name
            path.write_text(page_html(data, cohort, reader))
            if cohort.clinic == reader:
                packs[path] = target / f"board-pack-{path.stem}.pdf"
    folders = {"The network owner (every clinic)": NETWORK_FOLDER}
    folders.update({f"The director of {clinic}": clinic_folder(clinic) for clinic in data.clinics})
    (folder / "index.html").write_text(folders_html(data, folders))
    return packs
