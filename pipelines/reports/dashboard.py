"""The directors' dashboard: aggregate marts -> publishable frames -> Plotly figures -> self-contained HTML pages.

Pages read aggregates only (their cost does not grow with patients), every
count passes through pipelines.reports.privacy, and plotly.js is shipped once
beside the pages so that they open from disk with no network.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import duckdb
import numpy as np
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from pipelines.outcomes.rules import OutcomeRules
from pipelines.reports.pages import INSTRUMENT_LABELS, PAGE_STYLE, PLOTLY_FILE, slug
from pipelines.reports.privacy import (
    SUPPRESSED_NOTE,
    parent_of,
    publishable_counts,
    publishable_response_rates,
    suppress,
)
from pipelines.stats.dimensions import (
    CLINIC,
    CLINIC_SPLITS,
    INDICATION,
    NETWORK,
    NETWORK_VALUE,
    SPLIT_SEPARATOR,
    START_MONTH,
)

MOOD_INSTRUMENTS = ("phq9", "madrs", "gad7", "pcl5")
PAIN_INSTRUMENTS = ("nrs_pain", "bpi_interference")
ADVERSE_EVENTS = ("nausea", "vomiting", "dissociation", "dysphoria", "headache", "dizziness", "hypertension", "other")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
WATERFALL_MIN_SERIES = 20


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Whose page: the network, or one clinic; says which dimension values hold its splits."""

    clinic: str | None = None

    @property
    def title(self) -> str:
        return "Network overview" if self.clinic is None else f"Clinic: {self.clinic}"

    @property
    def file_name(self) -> str:
        return "network.html" if self.clinic is None else f"clinic-{slug(self.clinic)}.html"

    @property
    def whole(self) -> tuple[str, str]:
        return (NETWORK, NETWORK_VALUE) if self.clinic is None else (CLINIC, self.clinic)

    def split(self, by: str) -> tuple[str, pl.Expr]:
        """Return the dimension and an expression giving the split's label (indication or month)."""
        if self.clinic is None:
            return by, pl.col("dimension_value")
        return CLINIC_SPLITS[by], pl.col("dimension_value").str.split(SPLIT_SEPARATOR).list.last()

    def of_whole(self, frame: pl.DataFrame) -> pl.DataFrame:
        dimension, value = self.whole
        return frame.filter((pl.col("dimension") == dimension) & (pl.col("dimension_value") == value))

    def of_split(self, frame: pl.DataFrame, by: str) -> pl.DataFrame:
        dimension, label = self.split(by)
        selected = frame.filter(pl.col("dimension") == dimension)
        if self.clinic is not None:
            selected = selected.filter(pl.col("dimension_value").str.starts_with(f"{self.clinic}{SPLIT_SEPARATOR}"))
        return selected.with_columns(label.alias("label"))


@dataclasses.dataclass
class DashboardData:
    """Every aggregate the pages show, already suppressed for publication."""

    as_of: str
    min_cell_size: int
    alert_thresholds: tuple[float, float, float]  # systolic, diastolic, SpO2 (spec §6)
    clinics: list[str]
    response_rates: pl.DataFrame
    relief_survival: pl.DataFrame
    relief_summary: pl.DataFrame
    trajectories: pl.DataFrame
    end_change_quantiles: pl.DataFrame
    completion_funnel: pl.DataFrame
    booster_intervals: pl.DataFrame
    safety: pl.DataFrame
    dissociation: pl.DataFrame
    adherence: pl.DataFrame
    patients: pl.DataFrame
    statuses: pl.DataFrame
    rejected: pl.DataFrame


def dashboard_data(con: duckdb.DuckDBPyConnection, rules: OutcomeRules, as_of: str) -> DashboardData:
    """Return the publishable aggregates of a warehouse."""
    min_cell_size = rules.min_cell_size

    def table(sql: str) -> pl.DataFrame:
        return con.sql(sql).pl()

    k = min_cell_size
    survival = table("select * from marts.relief_survival")
    summary = suppress(
        table("select * from marts.relief_summary").with_columns(
            parent=parent_of(pl.col("dimension"), pl.col("dimension_value"))
        ),
        measures={
            "relapse_count": ["median_relief_days", "median_ci_low", "median_ci_high", "survival_28d", "survival_56d"]
        },
        total="responder_count",
        partition=["dimension", "parent", "instrument", "series_kind"],
        min_cell_size=k,
    )
    # A curve is drawn only for cohorts whose relapses may be shown, and only while at least
    # min_cell_size responders are still followed.
    shown = summary.filter(pl.col("relapse_count").is_not_null()).select(
        "dimension", "dimension_value", "instrument", "series_kind"
    )
    survival = (
        survival.join(shown, on=["dimension", "dimension_value", "instrument", "series_kind"])
        .filter(pl.col("at_risk") >= k)
        .drop("events", "censored")
    )
    cohort_partition = ["dimension", "parent"]

    def with_parent(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(parent=parent_of(pl.col("dimension"), pl.col("dimension_value")))

    safety = with_parent(table("select * from marts.safety_summary")).with_columns(
        [
            (pl.col(f"{code}_per_100") * pl.col("infusion_count") / 100).round().cast(pl.Int64).alias(f"{code}_count")
            for code in ADVERSE_EVENTS
        ]
    )
    safety = suppress(
        safety,
        measures={
            "hypertensive_count": ["hypertensive_rate"],
            "desaturation_count": ["desaturation_rate"],
            **{f"{code}_count": [f"{code}_per_100"] for code in ADVERSE_EVENTS},
        },
        total="infusion_count",
        partition=cohort_partition,
        min_cell_size=k,
        derived_from_total=("mean_systolic_rise",),
    )
    adherence = suppress(
        with_parent(table("select * from marts.measurement_adherence")),
        measures={"measured_infusion_count": ["adherence_rate"]},
        total="infusion_count",
        partition=cohort_partition,
        min_cell_size=k,
    )
    statuses = table(
        f"select '{NETWORK}' as dimension, '{NETWORK_VALUE}' as dimension_value, status, count(*) as series_count "
        "from marts.series_outcomes group by all union all "
        "select 'clinic', clinic_id, status, count(*) from marts.series_outcomes group by all"
    )
    return DashboardData(
        as_of=as_of,
        min_cell_size=k,
        alert_thresholds=(rules.sbp_alert, rules.dbp_alert, rules.spo2_alert),
        clinics=[r[0] for r in con.execute("select distinct clinic_id from staging.patients order by 1").fetchall()],
        response_rates=publishable_response_rates(table("select * from marts.response_rates"), k),
        relief_survival=survival,
        relief_summary=summary,
        trajectories=publishable_counts(
            table("select * from marts.trajectories"),
            "score_count",
            ["dimension", "instrument", "infusions_received"],
            k,
            derived=["mean_pct_change", "ci_low", "ci_high"],
        ),
        end_change_quantiles=table("select * from marts.end_change_quantiles").filter(
            pl.col("evaluable_count") >= max(k, WATERFALL_MIN_SERIES)
        ),
        completion_funnel=suppress(
            with_parent(table("select * from marts.completion_funnel")),
            measures={"inductions_reaching": ["share_reaching"]},
            total="induction_count",
            partition=[*cohort_partition, "infusion_number"],
            min_cell_size=k,
        ),
        booster_intervals=publishable_counts(
            with_parent(table("select * from marts.booster_intervals")),
            "interval_count",
            cohort_partition,
            k,
            derived=["median_days", "p25_days", "p75_days"],
        ),
        safety=safety,
        dissociation=suppress(
            with_parent(table("select * from marts.dissociation_by_infusion_number")),
            measures={"dissociation_count": ["dissociation_per_100"], "cadss_count": ["mean_cadss"]},
            total="infusion_count",
            partition=[*cohort_partition, "infusion_number"],
            min_cell_size=k,
        ),
        adherence=adherence,
        patients=publishable_counts(
            table(
                f"select '{NETWORK}' as dimension, '{NETWORK_VALUE}' as dimension_value, count(*) as patient_count "
                "from staging.patients union all select 'clinic', clinic_id, count(*) from staging.patients "
                "group by all"
            ).with_columns(parent=pl.lit(NETWORK_VALUE)),
            "patient_count",
            ["dimension"],
            k,
        ),
        statuses=publishable_counts(
            statuses.with_columns(parent=pl.lit(NETWORK_VALUE)), "series_count", ["dimension", "status"], k
        ),
        rejected=publishable_counts(
            table(
                "select source_file, reason, count(*) as row_count from quarantine.rejected_rows group by all "
                "order by 1, 2"
            ).with_columns(parent=pl.lit(NETWORK_VALUE)),
            "row_count",
            ["source_file"],
            k,
        ),
    )


# Figures ---------------------------------------------------------------------------------------------------


class Figure:
    """A Plotly figure as plain dicts: Plotly's figure objects validate and deep-copy every property (the template
    above all), which made rendering a page take seconds; plotly.io.to_html writes the same JSON from dicts."""

    def __init__(self, *traces: dict):
        self.data: list[dict] = list(traces)
        self.layout: dict = {}

    def add_trace(self, trace: dict) -> None:
        self.data.append(trace)

    def axis(self, name: str) -> dict:
        return self.layout.setdefault(name, {})

    @property
    def title(self) -> str:
        return self.layout.get("title", {}).get("text", "")

    def to_html(self, div_id: str) -> str:
        return pio.to_html(
            {"data": self.data, "layout": self.layout},
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
            validate=False,
        )


# Plotly's own plotly_white template, as the JSON that goes into every figure.
TEMPLATE = pio.templates["plotly_white"].to_plotly_json()


def scatter(**properties) -> dict:
    return {"type": "scatter", **properties}


def bar(**properties) -> dict:
    return {"type": "bar", **properties}


def layout(figure: Figure, title: str, y_title: str, x_title: str = "", percent: bool = False) -> Figure:
    figure.layout.update(
        title={"text": title},
        template=TEMPLATE,
        height=420,
        margin=dict(l=60, r=20, t=60, b=50),
        legend=dict(orientation="h", y=-0.2),
    )
    figure.axis("yaxis")["title"] = {"text": y_title}
    figure.axis("xaxis")["title"] = {"text": x_title}
    if percent:
        figure.axis("yaxis")["tickformat"] = ".0%"
    return figure


def instrument_menu(figure: Figure, trace_instruments: list[str]) -> Figure:
    """Add a dropdown that shows one instrument's traces at a time (no server needed)."""
    instruments = list(dict.fromkeys(trace_instruments))
    if len(instruments) <= 1:
        return figure
    buttons = [
        dict(
            label=INSTRUMENT_LABELS.get(code, code),
            method="update",
            args=[{"visible": [instrument == code for instrument in trace_instruments]}],
        )
        for code in instruments
    ]
    figure.layout["updatemenus"] = [dict(buttons=buttons, x=1.0, xanchor="right", y=1.15, yanchor="top")]
    for trace, instrument in zip(figure.data, trace_instruments, strict=True):
        trace["visible"] = instrument == instruments[0]
    return figure


def rates_by_month(data: DashboardData, cohort: Cohort) -> Figure | None:
    rates = cohort.of_split(data.response_rates, START_MONTH).filter(pl.col("series_kind") == "induction")
    if rates.filter(pl.col("response_rate").is_not_null()).is_empty():
        return None
    figure, owners = Figure(), []
    for instrument in [i for i in (*MOOD_INSTRUMENTS, *PAIN_INSTRUMENTS) if i in rates["instrument"].to_list()]:
        rows = rates.filter(pl.col("instrument") == instrument).sort("label")
        for measure, colour in (("response", COLOURS[0]), ("remission", COLOURS[2])):
            rate = rows[f"{measure}_rate"]
            figure.add_trace(
                scatter(
                    x=rows["label"].to_list(),
                    y=rate.to_list(),
                    mode="lines+markers",
                    name=f"{measure} rate",
                    line=dict(color=colour),
                    connectgaps=False,
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(rows[f"{measure}_ci_high"] - rate).to_list(),
                        arrayminus=(rate - rows[f"{measure}_ci_low"]).to_list(),
                        thickness=1,
                    ),
                    hovertemplate="%{x}: %{y:.0%}<extra>" + measure + "</extra>",
                )
            )
            owners.append(instrument)
    layout(
        figure,
        "Response and remission by month of induction start (95% Wilson intervals)",
        "share of series",
        percent=True,
    )
    return instrument_menu(figure, owners)


def relief_curves(data: DashboardData, cohort: Cohort, instruments: tuple[str, ...], domain: str) -> Figure | None:
    curves = cohort.of_split(data.relief_survival, INDICATION).filter(
        pl.col("instrument").is_in(instruments) & (pl.col("series_kind") == "induction")
    )
    if curves.is_empty():
        return None
    figure, owners = Figure(), []
    for instrument in [i for i in instruments if i in curves["instrument"].to_list()]:
        for index, label in enumerate(sorted(curves.filter(pl.col("instrument") == instrument)["label"].unique())):
            rows = curves.filter((pl.col("instrument") == instrument) & (pl.col("label") == label)).sort("day")
            days = [0, *rows["day"].to_list()]
            colour = COLOURS[index % len(COLOURS)]
            # The band: its lower step line, then the upper one filled down to it.
            for bound, fill in (("ci_low", None), ("ci_high", "tonexty")):
                figure.add_trace(
                    scatter(
                        x=days,
                        y=[1.0, *rows[bound].to_list()],
                        mode="lines",
                        fill=fill,
                        fillcolor=_faint(colour),
                        line=dict(width=0, shape="hv"),
                        hoverinfo="skip",
                        showlegend=False,
                        name=f"{label} 95% band",
                    )
                )
            figure.add_trace(
                scatter(
                    x=days,
                    y=[1.0, *rows["survival"].to_list()],
                    mode="lines",
                    line=dict(shape="hv", color=colour),
                    name=label,
                    hovertemplate="day %{x}: %{y:.0%} still relieved<extra>" + label + "</extra>",
                )
            )
            owners += [instrument, instrument, instrument]
    layout(
        figure,
        f"How long relief lasts after an induction: {domain} (Kaplan-Meier, 95% band)",
        "share of responders still relieved",
        "days since last infusion",
        percent=True,
    )
    return instrument_menu(figure, owners)


def _faint(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.15)"


def trajectory(data: DashboardData, cohort: Cohort, instruments: tuple[str, ...], domain: str) -> Figure | None:
    points = cohort.of_split(data.trajectories, INDICATION).filter(
        pl.col("instrument").is_in(instruments) & pl.col("mean_pct_change").is_not_null()
    )
    if points.is_empty():
        return None
    figure, owners = Figure(), []
    for instrument in [i for i in instruments if i in points["instrument"].to_list()]:
        for index, label in enumerate(sorted(points.filter(pl.col("instrument") == instrument)["label"].unique())):
            rows = points.filter((pl.col("instrument") == instrument) & (pl.col("label") == label)).sort(
                "infusions_received"
            )
            mean = rows["mean_pct_change"]
            figure.add_trace(
                scatter(
                    x=rows["infusions_received"].to_list(),
                    y=mean.to_list(),
                    mode="lines+markers",
                    name=label,
                    line=dict(color=COLOURS[index % len(COLOURS)]),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(rows["ci_high"] - mean).to_list(),
                        arrayminus=(mean - rows["ci_low"]).to_list(),
                        thickness=1,
                    ),
                    hovertemplate="after %{x} infusions: %{y:.0f}%<extra>" + label + "</extra>",
                )
            )
            owners.append(instrument)
    layout(
        figure,
        f"Mean change from baseline by infusion number: {domain} (95% intervals)",
        "% change from baseline",
        "infusions received",
    )
    return instrument_menu(figure, owners)


def waterfall(data: DashboardData, cohort: Cohort) -> Figure | None:
    quantiles = cohort.of_whole(data.end_change_quantiles).filter(pl.col("series_kind") == "induction")
    if quantiles.is_empty():
        return None
    figure, owners = Figure(), []
    for instrument in [i for i in (*MOOD_INSTRUMENTS, *PAIN_INSTRUMENTS) if i in quantiles["instrument"].to_list()]:
        rows = quantiles.filter(pl.col("instrument") == instrument).sort("quantile", descending=True)
        threshold = -30 if instrument in PAIN_INSTRUMENTS or instrument == "pcl5" else -50
        colours = ["#2ca02c" if v <= threshold else "#9aa5b1" for v in rows["end_pct_change"].to_list()]
        figure.add_trace(
            bar(
                x=[f"{q:.1%}" for q in rows["quantile"].to_list()],
                y=rows["end_pct_change"].to_list(),
                marker=dict(color=colours),
                name=INSTRUMENT_LABELS.get(instrument, instrument),
                hovertemplate="%{y:.0f}% at the %{x} quantile<extra></extra>",
            )
        )
        owners.append(instrument)
    layout(
        figure,
        "End-of-induction % change, worst to best (each bar a 5% slice of series; green: response)",
        "% change from baseline",
        "share of series (quantile)",
    )
    figure.axis("xaxis")["showticklabels"] = False
    return instrument_menu(figure, owners)


def completion_funnel(data: DashboardData, cohort: Cohort) -> Figure | None:
    funnel = cohort.of_whole(data.completion_funnel).sort("infusion_number")
    if funnel.filter(pl.col("share_reaching").is_not_null()).is_empty():
        return None
    figure = Figure(
        bar(
            x=[f"infusion {n}" for n in funnel["infusion_number"].to_list()],
            y=funnel["share_reaching"].to_list(),
            text=[f"{c}" if c is not None else "<" + str(data.min_cell_size) for c in funnel["inductions_reaching"]],
            textposition="outside",
            marker=dict(color=COLOURS[0]),
            hovertemplate="%{x}: %{y:.0%}<extra></extra>",
        )
    )
    return layout(
        figure, "Completion funnel: share of inductions reaching each infusion", "share of inductions", percent=True
    )


def booster_intervals(data: DashboardData, cohort: Cohort) -> Figure | None:
    if cohort.clinic is None:
        rows = data.booster_intervals.filter(pl.col("dimension") == CLINIC).with_columns(
            label=pl.col("dimension_value")
        )
    else:
        rows = pl.concat(
            [cohort.of_whole(data.booster_intervals), Cohort().of_whole(data.booster_intervals)]
        ).with_columns(label=pl.col("dimension_value").replace({NETWORK_VALUE: NETWORK}))
    rows = rows.filter(pl.col("median_days").is_not_null())
    if rows.is_empty():
        return None
    median = rows["median_days"]
    figure = Figure(
        bar(
            x=rows["label"].to_list(),
            y=median.to_list(),
            marker=dict(color=COLOURS[3]),
            error_y=dict(
                type="data",
                symmetric=False,
                array=(rows["p75_days"] - median).to_list(),
                arrayminus=(median - rows["p25_days"]).to_list(),
            ),
            hovertemplate="%{x}: median %{y:.0f} days<extra></extra>",
        )
    )
    return layout(figure, "Days from a series to the booster after it (median and interquartile range)", "days")


def safety_events(data: DashboardData, cohort: Cohort) -> Figure | None:
    rows = cohort.of_whole(data.safety)
    if rows.is_empty():
        return None
    row = rows.row(0, named=True)
    values = [row[f"{code}_per_100"] for code in ADVERSE_EVENTS]
    if all(v is None for v in values):
        return None
    figure = Figure(
        bar(
            x=list(ADVERSE_EVENTS),
            y=values,
            marker=dict(color=COLOURS[1]),
            hovertemplate="%{x}: %{y:.1f} per 100 infusions<extra></extra>",
        )
    )
    return layout(figure, "Adverse events per 100 infusions", "per 100 infusions")


def dissociation(data: DashboardData, cohort: Cohort) -> Figure | None:
    rows = cohort.of_whole(data.dissociation).sort("infusion_number")
    if rows.filter(pl.col("dissociation_per_100").is_not_null()).is_empty():
        return None
    labels = [f"{n}" if n < 7 else "7+" for n in rows["infusion_number"].to_list()]
    figure = Figure(
        scatter(
            x=labels,
            y=rows["dissociation_per_100"].to_list(),
            mode="lines+markers",
            name="dissociation per 100",
            line=dict(color=COLOURS[4]),
        )
    )
    if rows["mean_cadss"].drop_nulls().len():
        figure.add_trace(
            scatter(
                x=labels,
                y=rows["mean_cadss"].to_list(),
                mode="lines+markers",
                name="mean CADSS",
                yaxis="y2",
                line=dict(color=COLOURS[5], dash="dot"),
            )
        )
        figure.layout["yaxis2"] = dict(title={"text": "mean CADSS"}, overlaying="y", side="right")
    return layout(figure, "Dissociation by infusion number during inductions", "per 100 infusions", "infusion number")


def funnel_plot(data: DashboardData, cohort: Cohort) -> Figure | None:
    """Return clinics' response rates against their size with 95% and 99.8% control limits around the network."""
    rates = data.response_rates.filter((pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9"))
    network = Cohort().of_whole(rates)
    clinics = rates.filter((pl.col("dimension") == CLINIC) & pl.col("response_rate").is_not_null())
    if network.is_empty() or network["response_rate"][0] is None or clinics.is_empty():
        return None
    p0 = network["response_rate"][0]
    largest = max(clinics["evaluable_count"].max(), 20)
    # A geometric grid: smooth curves in a fixed number of points, however large the clinics grow.
    sizes = sorted({round(n) for n in np.geomspace(5, largest * 1.2, 200)})
    figure = Figure()
    for z, name, dash in ((1.959964, "95% limits", "dash"), (3.090232, "99.8% limits", "dot")):
        for sign in (1, -1):
            figure.add_trace(
                scatter(
                    x=sizes,
                    y=[min(max(p0 + sign * z * (p0 * (1 - p0) / n) ** 0.5, 0), 1) for n in sizes],
                    mode="lines",
                    line=dict(color="#7f7f7f", dash=dash, width=1),
                    name=name,
                    showlegend=sign == 1,
                    hoverinfo="skip",
                )
            )
    figure.add_trace(
        scatter(x=[sizes[0], sizes[-1]], y=[p0, p0], mode="lines", name="network rate", line=dict(color="#333333"))
    )
    mine = clinics["dimension_value"] == (cohort.clinic or "")
    figure.add_trace(
        scatter(
            x=clinics["evaluable_count"].to_list(),
            y=clinics["response_rate"].to_list(),
            mode="markers+text",
            text=clinics["dimension_value"].to_list(),
            textposition="top center",
            name="clinics",
            marker=dict(size=[14 if m else 9 for m in mine], color=[COLOURS[1] if m else COLOURS[0] for m in mine]),
            hovertemplate="%{text}: %{y:.0%} of %{x} series<extra></extra>",
        )
    )
    return layout(
        figure,
        "PHQ-9 response after induction: clinics against the network (funnel plot)",
        "response rate",
        "evaluable induction series",
        percent=True,
    )


def rejected_rows(data: DashboardData) -> Figure | None:
    rows = data.rejected.filter(pl.col("row_count").is_not_null())
    if rows.is_empty():
        return None
    figure = Figure()
    for index, file in enumerate(rows["source_file"].unique(maintain_order=True).to_list()):
        part = rows.filter(pl.col("source_file") == file)
        figure.add_trace(
            bar(
                x=part["reason"].to_list(),
                y=part["row_count"].to_list(),
                name=file,
                marker=dict(color=COLOURS[index % len(COLOURS)]),
            )
        )
    return layout(figure, "Rows the clinics sent that could not be used, by reason", "rows")


def series_statuses(data: DashboardData, cohort: Cohort) -> Figure | None:
    rows = cohort.of_whole(data.statuses).filter(pl.col("series_count").is_not_null()).sort("status")
    if rows.is_empty():
        return None
    figure = Figure(bar(x=rows["status"].to_list(), y=rows["series_count"].to_list(), marker=dict(color=COLOURS[8])))
    return layout(figure, "Series and instrument pairs by status (missing baselines and follow-ups)", "pairs")


# Pages -----------------------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def count_text(value: int | None, min_cell_size: int) -> str:
    return f"<{min_cell_size}" if value is None else f"{value:,}"


def tiles(data: DashboardData, cohort: Cohort) -> str:
    dimension, value = cohort.whole
    patients = data.patients.filter((pl.col("dimension") == dimension) & (pl.col("dimension_value") == value))
    rates = cohort.of_whole(data.response_rates).filter(pl.col("series_kind") == "induction")
    relief = cohort.of_whole(data.relief_summary).filter(
        (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
    )
    funnel = cohort.of_whole(data.completion_funnel)
    cards = [
        ("patients treated", count_text(patients["patient_count"][0] if patients.height else None, data.min_cell_size))
    ]
    if funnel.height:
        first = funnel.filter(pl.col("infusion_number") == 1)
        cards.append(("inductions started", count_text(first["inductions_reaching"][0], data.min_cell_size)))
        last = funnel.sort("infusion_number").tail(1)
        cards.append((f"reach infusion {last['infusion_number'][0]}", percent(last["share_reaching"][0])))
    for instrument in ("phq9", "nrs_pain"):
        row = rates.filter(pl.col("instrument") == instrument)
        if row.height:
            r = row.row(0, named=True)
            label = INSTRUMENT_LABELS[instrument]
            interval = (
                f" ({percent(r['response_ci_low'])}–{percent(r['response_ci_high'])})"
                if r["response_rate"] is not None
                else ""
            )
            cards.append((f"{label} response{interval}", percent(r["response_rate"])))
            interval = (
                f" ({percent(r['remission_ci_low'])}–{percent(r['remission_ci_high'])})"
                if r["remission_rate"] is not None
                else ""
            )
            cards.append((f"{label} remission{interval}", percent(r["remission_rate"])))
    if relief.height:
        r = relief.row(0, named=True)
        median = (
            "not reached"
            if r["relapse_count"] is not None and r["median_relief_days"] is None
            else ("—" if r["median_relief_days"] is None else f"{r['median_relief_days']} days")
        )
        low = r["median_ci_low"] if r["median_ci_low"] is not None else "—"
        high = r["median_ci_high"] if r["median_ci_high"] is not None else "not reached"
        cards.append((f"median relief, PHQ-9 (95% CI {low}–{high})", median))
    return "".join(
        f"<div class='tile'><div class='value'>{html.escape(v)}</div><div class='label'>{html.escape(k)}</div></div>"
        for k, v in cards
    )


def figure_html(figure: Figure | None, name: str, empty: str) -> str:
    if figure is None:
        return f"<div class='card'><p class='empty' data-empty-figure='{name}'>{html.escape(empty)}</p></div>"
    # The title goes above the figure in HTML, leaving the plot's top edge to the instrument menu.
    title = figure.title
    figure.layout.pop("title", None)
    figure.layout["margin"] = {**figure.layout.get("margin", {}), "t": 40}
    body = figure.to_html(div_id=f"figure-{name}")
    return f"<div class='card'><h3>{html.escape(title)}</h3>{body}</div>"


def page_html(data: DashboardData, cohort: Cohort) -> str:
    """Return one cohort's page: tiles, outcome, relief, safety and data-quality figures."""
    too_few = f"Too few patients to show without revealing fewer than {data.min_cell_size}."
    figures = [
        ("rates-by-month", rates_by_month(data, cohort)),
        ("relief-depression", relief_curves(data, cohort, MOOD_INSTRUMENTS, "depression and mood")),
        ("relief-pain", relief_curves(data, cohort, PAIN_INSTRUMENTS, "pain")),
        ("trajectory-depression", trajectory(data, cohort, MOOD_INSTRUMENTS, "depression and mood")),
        ("trajectory-pain", trajectory(data, cohort, PAIN_INSTRUMENTS, "pain")),
        ("waterfall", waterfall(data, cohort)),
        ("completion-funnel", completion_funnel(data, cohort)),
        ("booster-intervals", booster_intervals(data, cohort)),
    ]
    if cohort.clinic is not None:
        figures.append(("clinic-vs-network", funnel_plot(data, cohort)))
    figures += [
        ("adverse-events", safety_events(data, cohort)),
        ("dissociation", dissociation(data, cohort)),
        ("statuses", series_statuses(data, cohort)),
    ]
    if cohort.clinic is None:
        figures.append(("rejected-rows", rejected_rows(data)))
    safety = cohort.of_whole(data.safety)
    adherence = cohort.of_whole(data.adherence)
    safety_line = ""
    if safety.height:
        s = safety.row(0, named=True)
        sbp, dbp, spo2 = data.alert_thresholds
        rise = s["mean_systolic_rise"]
        safety_line = (
            f"Hypertensive sessions (≥{sbp:g}/{dbp:g} mmHg): {percent(s['hypertensive_rate'])}; "
            f"desaturation below {spo2:g}%: {percent(s['desaturation_rate'])}; "
            + ("no blood pressure recorded." if rise is None else f"mean systolic rise {rise:.0f} mmHg.")
        )
    adherence_line = (
        f"Measurement adherence (infusions with a pre-infusion score): {percent(adherence['adherence_rate'][0])}."
        if adherence.height
        else ""
    )
    nav = " ".join(
        ["<a href='index.html'>Index</a>", "<a href='network.html'>Network</a>"]
        + [f"<a href='{Cohort(c).file_name}'>{html.escape(c)}</a>" for c in data.clinics]
    )
    cards = "".join(figure_html(figure, name, too_few) for name, figure in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(cohort.title)} — ketamine infusion outcomes</title>
<script src="{PLOTLY_FILE}"></script><style>{PAGE_STYLE}</style></head>
<body><header><h1>{html.escape(cohort.title)}</h1><div>Data as of {html.escape(data.as_of)}. {nav}</div></header>
<main><section class="tiles">{tiles(data, cohort)}</section>
<p>{html.escape(safety_line)} {html.escape(adherence_line)}</p>
<section class="grid">{cards}</section>
<p class="note">{html.escape(SUPPRESSED_NOTE.format(limit=data.min_cell_size - 1))} Rates and curves count evaluable
series (a baseline within 30 days before the first infusion and a follow-up within 14 days after the last);
response is a 50% reduction on mood scales and 30% on pain scales and PCL-5.</p></main></body></html>
"""


def index_html(data: DashboardData) -> str:
    links = "".join(f"<li><a href='{Cohort(c).file_name}'>{html.escape(c)}</a></li>" for c in data.clinics)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ketamine infusion outcomes</title><style>{PAGE_STYLE}</style>
</head><body><header><h1>Ketamine infusion outcomes</h1><div>Data as of {html.escape(data.as_of)}</div></header>
<main><ul><li><a href="network.html">Network overview</a></li></ul><h2>Clinics</h2><ul>{links}</ul>
<p><a href="refresh_summary.html">Refresh summary</a> (rows read, rejected and computed)</p>
<p class="note">{html.escape(SUPPRESSED_NOTE.format(limit=data.min_cell_size - 1))}</p></main></body></html>
"""


def write_dashboard(folder: Path, data: DashboardData) -> list[Path]:
    """Write index.html, network.html, one page per clinic and the shared plotly.js; return the pages."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLOTLY_FILE).write_text(get_plotlyjs())
    pages = [folder / "index.html"]
    pages[0].write_text(index_html(data))
    for cohort in [Cohort(), *[Cohort(clinic) for clinic in data.clinics]]:
        path = folder / cohort.file_name
        path.write_text(page_html(data, cohort))
        pages.append(path)
    return pages
