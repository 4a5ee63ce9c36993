"""The directors' pages: the publishable aggregates -> figures -> self-contained HTML pages.

Pages read pipelines.reports.publishable only (aggregates after disclosure
control; their cost does not grow with patients), draw figures from
pipelines.reports.figures, and ship plotly.js once beside them so that they
open from disk with no network.
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import polars as pl
from plotly.offline import get_plotlyjs

from pipelines.reports import figures as fig
from pipelines.reports.disclosure import WITHHELD, count_text, note
from pipelines.reports.figures import Cohort, escaped
from pipelines.reports.pages import INSTRUMENT_LABELS, PAGE_STYLE, PLOTLY_FILE
from pipelines.reports.publishable import SUICIDALITY_WINDOW_DAYS, Publishable
from pipelines.stats.dimensions import CLINIC, DOSE_BAND, PROVIDER

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
table.outcomes{border-collapse:collapse;width:100%;font-size:.85rem}
table.outcomes th,table.outcomes td{padding:.3rem .5rem;border-bottom:1px solid #e3e8ef;text-align:right}
table.outcomes th:first-child,table.outcomes td:first-child{text-align:left}table.outcomes th{background:#eef2f7}
table.outcomes td small{color:#5a6b7d;white-space:nowrap}
@media print{body{background:#fff}.grid{display:block}main{max-width:none}
.card{break-inside:avoid;page-break-inside:avoid;margin:0 0 12px;box-shadow:none;border:1px solid #d8dee6}
.tiles,table.league{break-inside:avoid}header{padding:.5rem 1rem}}
"""


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"95% CI {percent(low)}–{percent(high)}"


def median_interval(low: int | None, high: int | None) -> str:
    """Return the 95% interval of a median relief in days. A bound is null where its band never falls to one
    half: the lower bound falls first, so with no lower bound there is no upper one either."""
    if low is None:
        return "95% CI not reached"
    if high is None:
        return f"95% CI {low} days or longer"
    return f"95% CI {low}–{high} days"


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


# A headline rate is over these series; none (0) is a dash, a hidden rate WITHHELD.
HEADLINE_DENOMINATORS = {"response": "evaluable_count", "remission": "remission_eligible_count"}


def headline_rate_text(rates: dict, measure: str) -> str:
    """Return a cohort's response or remission rate (a headline_rates row) as tiles and the league print it: a
    missing rate is a dash where no series counts, else one disclosure control hides."""
    rate = rates.get(f"{measure}_rate")
    if rate is None and rates.get(HEADLINE_DENOMINATORS[measure]) != 0:
        return WITHHELD
    return percent(rate)


def median_relief_text(summary: dict) -> str:
    """Return a relief_summary row's median as tiles and the league print it."""
    if summary["relapse_count"] is None:  # withheld by disclosure control, and its interval with it
        return WITHHELD
    return "not reached" if summary["median_relief_days"] is None else f"{summary['median_relief_days']} days"


def tiles(data: Publishable, cohort: Cohort) -> str:
    """Headline tiles: the cohort's figure, with the network's beside it on a clinic's page."""
    network = Cohort()
    patients = cohort.of_whole(data.patients)
    cards = [("patients treated", count_text(patients["patient_count"][0] if patients.height else None), "")]
    funnel = cohort.of_whole(data.completion_funnel).sort("infusion_number")
    if funnel.height:
        cards.append(("inductions started", count_text(funnel["inductions_reaching"][0]), ""))
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
            cards.append((f"{caption} ({ci})" if ci else caption, headline_rate_text(mine, measure), beside))
    relief = cohort.of_whole(data.relief_summary).filter(
        (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
    )
    if relief.height:
        r = relief.row(0, named=True)
        ci = "" if r["relapse_count"] is None else median_interval(r["median_ci_low"], r["median_ci_high"])
        cards.append((f"median relief, PHQ-9 ({ci})" if ci else "median relief, PHQ-9", median_relief_text(r), ""))
    suicidality = cohort.of_whole(data.suicidality)
    if suicidality.height and suicidality["scored_count"][0]:
        row = suicidality.row(0, named=True)
        # Patients were scored: a missing rate is one disclosure control hides, never "none flagged".
        shown = WITHHELD if row["flagged_rate"] is None else percent(row["flagged_rate"])
        scored = count_text(row["scored_count"])
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
        summary = relief.row(0, named=True) if relief.height else None
        rows.append(
            {
                "clinic": data.name_of(clinic),
                "patients": patients["patient_count"][0] if patients.height else None,
                "inductions": funnel["inductions_reaching"][0] if funnel.height else None,
                "completion": target["share_reaching"][0] if target.height else None,
                "response": rate.get("response_rate"),
                "response_text": headline_rate_text(rate, "response") if rate else "—",
                "response_ci": interval(rate.get("response_ci_low"), rate.get("response_ci_high")),
                "remission": rate.get("remission_rate"),
                "remission_text": headline_rate_text(rate, "remission") if rate else "—",
                "remission_ci": interval(rate.get("remission_ci_low"), rate.get("remission_ci_high")),
                "relief": None
                if summary is None or summary["relapse_count"] is None
                else summary["median_relief_days"],
                "relief_text": "—" if summary is None else median_relief_text(summary),
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
            + cell(count_text(row["patients"]), row["patients"])
            + cell(count_text(row["inductions"]), row["inductions"])
            + cell(percent(row["completion"]), row["completion"])
            + cell(f"{row['response_text']} {row['response_ci']}".strip(), row["response"])
            + cell(f"{row['remission_text']} {row['remission_ci']}".strip(), row["remission"])
            + cell(row["relief_text"], row["relief"])
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


def rate_cell(row: dict, prefix: str, denominator: str) -> str:
    """Return a table cell: the rate, its interval and its denominator; a dash where no series counts, and
    "withheld" where disclosure control hides the rate (as the tiles and the league print it)."""
    rate = row.get(f"{prefix}_rate")
    if rate is None:
        return f"<td>{'—' if row.get(denominator) == 0 else WITHHELD}</td>"
    ci = interval(row.get(f"{prefix}_ci_low"), row.get(f"{prefix}_ci_high")).removeprefix("95% CI ")
    # A rate shown without its n: the n is withheld because the series outside it are few (spec §10.8).
    n = "n withheld" if row.get(denominator) is None else f"n {row[denominator]:,}"
    return f"<td>{html.escape(percent(rate))}<br><small>{html.escape(ci)} · {n}</small></td>"


OUTCOME_MEASURES = (
    ("response", "evaluable_count", "response"),
    ("remission", "remission_eligible_count", "remission (of eligible)"),
    ("reliable_improvement", "reliable_change_count", "reliable improvement"),
    ("reliable_deterioration", "reliable_change_count", "reliable deterioration"),
    ("reliable_recovery", "case_at_baseline_count", "reliable recovery (of cases)"),
)


def outcomes_table(data: Publishable, cohort: Cohort) -> str:
    """Return every outcome rate of the cohort's inductions by instrument: response and remission beside reliable
    change and recovery (spec §10.2-10.3), each with its interval and denominator."""
    rows = headline_rates(data, cohort).filter(pl.col("evaluable_count").is_not_null()).sort("instrument")
    if rows.is_empty():
        return ""
    order = {code: i for i, code in enumerate(INSTRUMENT_LABELS)}
    body = "".join(
        f"<tr><td>{html.escape(INSTRUMENT_LABELS.get(row['instrument'], row['instrument']))}</td>"
        + "".join(rate_cell(row, prefix, denominator) for prefix, denominator, _ in OUTCOME_MEASURES)
        + "</tr>"
        for row in sorted(rows.iter_rows(named=True), key=lambda r: order.get(r["instrument"], len(order)))
    )
    headers = "".join(f"<th>{html.escape(label)}</th>" for _, _, label in OUTCOME_MEASURES)
    return (
        "<div class='card wide'><h3>Outcomes after induction by instrument (95% Wilson intervals; n = the series "
        f"each rate counts)</h3><table class='outcomes'><thead><tr><th>instrument</th>{headers}</tr></thead>"
        f"<tbody>{body}</tbody></table><p class='note'>Remission counts only series whose baseline was above the "
        "remission cut-off (spec §10.2): a patient who starts in remission cannot remit. Reliable improvement and "
        "deterioration are an end score at least the instrument's reliable change better or worse than baseline "
        "(PHQ-9 6, GAD-7 4, PCL-5 10, pain 0-10 2 points); reliable recovery is a case at baseline (PHQ-9 10+, "
        "GAD-7 8+, PCL-5 33+, pain 4+) who ends below caseness with a reliable improvement (NHS Talking Therapies). "
        "Instruments without a reliable change show a dash.</p></div>"
    )


def early_check_table(data: Publishable, cohort: Cohort) -> str:
    """Return how well the early check predicted non-response in this cohort's own inductions (spec §10.4)."""
    rules = data.rules
    rows = headline_rates(data, cohort).filter(pl.col("early_checked_count").fill_null(0) > 0)
    if rows.is_empty():
        return ""
    body = "".join(
        f"<tr><td>{html.escape(INSTRUMENT_LABELS.get(row['instrument'], row['instrument']))}</td>"
        f"<td>{html.escape(count_text(row['early_checked_count']))}</td>"
        f"<td>{html.escape(count_text(row['early_non_improver_count']))}</td>"
        + rate_cell(row, "early_ppv", "early_non_improver_count")
        + rate_cell(row, "early_sensitivity", "early_checked_non_responder_count")
        + "</tr>"
        for row in rows.sort("instrument").iter_rows(named=True)
    )
    return (
        f"<div class='card wide'><h3>The early check: less than {rules.early_improvement_pct:g}% better after "
        f"{rules.early_check_infusions} infusions, and how often it foretold non-response here</h3>"
        "<table class='outcomes'><thead><tr><th>instrument</th><th>inductions checked</th><th>flagged</th>"
        "<th>flagged who ended without response (PPV)</th><th>non-responders flagged early (sensitivity)</th>"
        f"</tr></thead><tbody>{body}</tbody></table><p class='note'>Published research found non-improvement after "
        "4 infusions predicts non-response with a sensitivity above 90% (Translational Psychiatry, 2024); these are "
        "this cohort's own figures. Clinicians have the list of inductions in progress that the check flags.</p>"
        "</div>"
    )


BREAKDOWN_TITLES = {PROVIDER: "provider (who gave most of the series' infusions)", DOSE_BAND: "mean dose, mg/kg"}
DOSE_ORDER = ("<0.5", "0.5-<0.75", "0.75-<1.0", ">=1.0", "unknown")


def breakdown_table(data: Publishable, cohort: Cohort, by: str, instrument: str) -> str:
    """Return response, remission and median relief of the cohort's inductions by provider or dose band (§10.6)."""
    rates = cohort.of_split(data.response_rates, by).filter(
        (pl.col("series_kind") == "induction") & (pl.col("instrument") == instrument)
    )
    if rates.is_empty():
        return ""
    relief = cohort.of_split(data.relief_summary, by).filter(
        (pl.col("series_kind") == "induction") & (pl.col("instrument") == instrument)
    )
    # A group without a relief row had no responder to follow: a dash.
    relief_texts = {row["label"]: median_relief_text(row) for row in relief.iter_rows(named=True)}
    order = {band: i for i, band in enumerate(DOSE_ORDER)} if by == DOSE_BAND else {}
    rows = sorted(rates.iter_rows(named=True), key=lambda r: (order.get(r["label"], len(order)), r["label"]))
    body = []
    for row in rows:
        label = row["label"]
        relief_text = relief_texts.get(label, "—")
        body.append(
            f"<tr><td>{escaped(label)}</td><td>{html.escape(count_text(row['evaluable_count']))}</td>"
            + rate_cell(row, "response", "evaluable_count")
            + rate_cell(row, "remission", "remission_eligible_count")
            + f"<td>{html.escape(relief_text)}</td></tr>"
        )
    name = INSTRUMENT_LABELS.get(instrument, instrument)
    return (
        f"<div class='card'><h3>{html.escape(name)} after induction by {html.escape(BREAKDOWN_TITLES[by])}</h3>"
        f"<table class='outcomes'><thead><tr><th>{html.escape(by.replace('_', ' '))}</th><th>evaluable</th>"
        "<th>response</th><th>remission (of eligible)</th><th>median relief</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def breakdowns_shown(cohort: Cohort, reader: str | None) -> list[str]:
    """The breakdowns of a page. A clinic's director sees their own clinic's providers only: the network's
    providers would name other clinics' clinicians."""
    return [DOSE_BAND] if cohort.clinic is None and reader is not None else [PROVIDER, DOSE_BAND]


def breakdown_tables(data: Publishable, cohort: Cohort, by: str) -> str:
    """Return the cohort's tables by provider or by dose band, one per headline instrument."""
    return "".join(breakdown_table(data, cohort, by, instrument) for instrument in HEADLINE_INSTRUMENTS)


def rules_note(data: Publishable) -> str:
    """The page note, built from the rules in force."""
    rules = data.rules
    return (
        f"Rates and curves count evaluable series: a baseline within {rules.baseline_window_days} days before the "
        f"first infusion and a follow-up within {rules.response_window_days} days after the last. Response is a "
        "reduction from baseline of at least the instrument's response threshold (50% on mood scales, 30% on pain "
        "scales and PCL-5); remission is an end score at or below the instrument's cut-off, counted over series whose "
        "baseline was above it. A new series starts "
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
    links += [f"<a href='{Cohort(c).file_name}'>{escaped(data.name_of(c))}</a>" for c in clinics]
    return " ".join(links)


def cohort_parts(data: Publishable, cohort: Cohort) -> dict[str, str]:
    """Return the parts of a cohort's page that every reader sees alike, rendered as HTML.

    A clinic's page is written for the network owner and for its director, and the network's page for the
    owner and as every director's benchmark: these parts are rendered once per cohort and reused (the pages of
    twenty clinics in less than half the time).
    """
    too_few = f"Too few patients to show without revealing fewer than {data.min_cell_size}."
    figures = {
        "trends": lambda: fig.trends(data, cohort),
        "relief-depression": lambda: fig.relief_curves(data, cohort, fig.MOOD_INSTRUMENTS, "depression and mood"),
        "relief-pain": lambda: fig.relief_curves(data, cohort, fig.PAIN_INSTRUMENTS, "pain"),
        "trajectory-depression": lambda: fig.trajectory(data, cohort, fig.MOOD_INSTRUMENTS, "depression and mood"),
        "trajectory-pain": lambda: fig.trajectory(data, cohort, fig.PAIN_INSTRUMENTS, "pain"),
        "waterfall": lambda: fig.waterfall(data, cohort),
        "completion-funnel": lambda: fig.completion_funnel(data, cohort),
        "adverse-events": lambda: fig.safety_events(data, cohort),
        "dissociation": lambda: fig.dissociation(data, cohort),
        "statuses": lambda: fig.series_statuses(data, cohort),
    }
    parts = {name: figure_html(make(), name, too_few) for name, make in figures.items()}
    parts["tiles"] = tiles(data, cohort)
    parts["text"] = f"{html.escape(safety_text(data, cohort))} {html.escape(adherence_text(data, cohort))}"
    parts.update({f"by-{by}": breakdown_tables(data, cohort, by) for by in (PROVIDER, DOSE_BAND)})
    parts["tables"] = f"{outcomes_table(data, cohort)}\n{early_check_table(data, cohort)}"
    return parts


def page_html(data: Publishable, cohort: Cohort, reader: str | None = None, parts: dict[str, str] | None = None) -> str:
    """Return one cohort's page for one reader: the network owner (reader None) or a clinic's director, who
    sees the network as a benchmark with no other clinic named. parts: the cohort's cohort_parts, if at hand."""
    too_few = f"Too few patients to show without revealing fewer than {data.min_cell_size}."
    parts = parts if parts is not None else cohort_parts(data, cohort)
    cards = [
        parts[name]
        for name in (
            "trends",
            "relief-depression",
            "relief-pain",
            "trajectory-depression",
            "trajectory-pain",
            "waterfall",
            "completion-funnel",
        )
    ]
    cards.append(figure_html(fig.booster_intervals(data, cohort, reader), "booster-intervals", too_few))
    if cohort.clinic is not None:
        cards.append(figure_html(fig.funnel_plot(data, cohort, reader), "clinic-vs-network", too_few))
    if cohort.clinic is not None or reader is None:
        cards.append(figure_html(fig.case_mix_plot(data, cohort, reader), "case-mix", too_few))
    cards += [parts[name] for name in ("adverse-events", "dissociation", "statuses")]
    cards = "".join(cards)
    period = f"Series started {html.escape(data.period)}. " if data.period else ""
    league = league_table(data) if cohort.clinic is None and reader is None else ""
    if cohort.clinic is not None:
        title = f"Clinic: {data.name_of(cohort.clinic)}"
    else:
        title = cohort.title if reader is None else "The network, as a benchmark"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} — ketamine infusion outcomes</title>
<script src="{PLOTLY_FILE}"></script><style>{PAGE_STYLE}{EXTRA_STYLE}</style></head>
<body>{banner(data)}<header><h1>{html.escape(title)}</h1><div>{period}Data as of {html.escape(data.as_of)}.
{navigation(data, reader)}</div></header>
<main><section class="tiles">{parts["tiles"]}</section>
<p>{parts["text"]}</p>
{league}
{parts["tables"]}
<section class="grid">{cards}{"".join(parts[f"by-{by}"] for by in breakdowns_shown(cohort, reader))}</section>
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
    links = "".join(f"<li><a href='{Cohort(c).file_name}'>{escaped(data.name_of(c))}</a></li>" for c in clinics)
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


def with_plotly(path: Path, plotly: str, written: Path | None) -> Path:
    """Put plotly.js at path and return where it was first written: each reader's folder holds its own
    (a folder is handed over whole), as a hard link to the first copy where the file system allows, since
    4.6 MB written into each of twenty folders took most of a second."""
    if written is not None:
        try:
            os.link(written, path)
            return written
        except OSError:
            pass
    path.write_text(plotly)
    return path


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
    parts: dict[str | None, dict[str, str]] = {}  # each cohort's shared parts, rendered once
    first_plotly: Path | None = None
    for reader, target in readers.items():
        target.mkdir(parents=True)
        first_plotly = with_plotly(target / PLOTLY_FILE, plotly, first_plotly)
        (target / "index.html").write_text(index_html(data, reader))
        cohorts = [Cohort(), *[Cohort(clinic) for clinic in (data.clinics if reader is None else [reader])]]
        for cohort in cohorts:
            if cohort.clinic not in parts:
                parts[cohort.clinic] = cohort_parts(data, cohort)
            path = target / cohort.file_name
            path.write_text(page_html(data, cohort, reader, parts[cohort.clinic]))
            if cohort.clinic == reader:
                packs[path] = target / f"board-pack-{path.stem}.pdf"
    folders = {"The network owner (every clinic)": NETWORK_FOLDER}
    folders.update({f"The director of {data.name_of(clinic)}": clinic_folder(clinic) for clinic in data.clinics})
    (folder / "index.html").write_text(folders_html(data, folders))
    return packs
