"""The directors' figures: Plotly figures as plain dicts, drawn from the publishable aggregates only.

Every label that comes from data (a clinic id, an indication) is escaped:
Plotly renders a little HTML in text and names, so a clinic called
<a href=...> would otherwise become a link on a director's page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import itertools
import weakref

import numpy as np
import plotly.io as pio
import polars as pl

from pipelines.reports.disclosure import parent_of
from pipelines.reports.pages import INSTRUMENT_LABELS, slug
from pipelines.reports.publishable import ADVERSE_EVENTS, Publishable
from pipelines.stats.dimensions import (
    CLINIC,
    CLINIC_SPLITS,
    INDICATION,
    NETWORK,
    NETWORK_VALUE,
    SPLIT_SEPARATOR,
    START_HALF,
    START_MONTH,
    START_QUARTER,
    START_YEAR,
    split_id,
    split_ids,
)

MOOD_INSTRUMENTS = ("phq9", "madrs", "gad7", "pcl5")
PAIN_INSTRUMENTS = ("nrs_pain", "bpi_interference")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
# One colour per indication on every figure and page, whichever indications a cohort has.
INDICATION_COLOURS = {
    "depression": "#1f77b4",
    "ptsd": "#d62728",
    "anxiety": "#2ca02c",
    "bipolar_depression": "#9467bd",
    "crps": "#ff7f0e",
    "fibromyalgia": "#8c564b",
    "neuropathic_pain": "#e377c2",
    "migraine": "#17becf",
}
ACRONYMS = {"ptsd": "PTSD", "crps": "CRPS", "ocd": "OCD"}
PERIOD_NAMES = {
    START_MONTH: "month",
    START_QUARTER: "quarter",
    START_HALF: "half-year",
    START_YEAR: "year",
    "balanced": "runs of months",  # the README's name; each x label spells out its run
}


ALL_INDICATIONS = "all indications"

# id of a mart's frame: (a weak reference to it, its rows by (dimension, owner)); see rows_of.
_COHORT_INDEXES: dict[int, tuple[weakref.ref, dict[tuple, pl.DataFrame]]] = {}


def rows_of(frame: pl.DataFrame, dimension: str, owner: str) -> pl.DataFrame:
    """Return the rows of a dimension, of one owner: for the clinic dimension and a clinic's splits, the rows of
    the clinic whose id split_id writes as owner; for the others (owner NETWORK_VALUE, their parent) every row.

    The rows come from an index built once per frame: the pages of twenty-one cohorts select from the same
    marts some twenty times each, and filtering the whole relief curves every time took a second.
    """
    entry = _COHORT_INDEXES.get(id(frame))
    if entry is None or entry[0]() is not frame:
        dimension_of_row, value = pl.col("dimension"), pl.col("dimension_value")
        owners = (
            pl.when(dimension_of_row == CLINIC).then(split_ids(value)).otherwise(parent_of(dimension_of_row, value))
        )
        # A stable sort keeps each group's rows in the frame's order; a group is then a slice, not a copy.
        ordered = frame.with_columns(_owner=owners).sort("dimension", "_owner", maintain_order=True)
        runs = ordered.group_by("dimension", "_owner", maintain_order=True).len()
        ordered = ordered.drop("_owner")
        index, offset = {}, 0
        for dimension_of_run, owner_of_run, length in runs.iter_rows():
            index[(dimension_of_run, owner_of_run)] = ordered.slice(offset, length)
            offset += length
        key = id(frame)
        entry = (weakref.ref(frame, lambda _: _COHORT_INDEXES.pop(key, None)), index)
        _COHORT_INDEXES[key] = entry
    found = entry[1].get((dimension, owner))
    return frame.clear() if found is None else found


def whole_and_by_indication(frame: pl.DataFrame, cohort: Cohort) -> pl.DataFrame:
    """Return a cohort's rows for all its patients (labelled ALL_INDICATIONS) and split by indication: a clinic's
    indications are often too small to show alone, the clinic as a whole rarely is."""
    whole = cohort.of_whole(frame).with_columns(label=pl.lit(ALL_INDICATIONS))
    split = cohort.of_split(frame, INDICATION)
    # Where every series of an instrument has one indication, its curve and "all indications" are the same
    # curve drawn twice, one hiding the other: only the indication's, which names it, is kept.
    kinds = [column for column in ("instrument", "series_kind") if column in frame.columns]
    points = [column for column in frame.columns if column not in ("dimension", "dimension_value", "parent")]
    one_indication = split.group_by(kinds).agg(pl.col("label").n_unique()).filter(pl.col("label") == 1)
    drawn_once = [
        key
        for key in one_indication.select(kinds).iter_rows(named=True)
        if split.filter(**key).select(points).sort(points).equals(whole.filter(**key).select(points).sort(points))
    ]
    if drawn_once:
        whole = whole.join(pl.DataFrame(drawn_once), on=kinds, how="anti")
    return pl.concat([whole, split], how="vertical_relaxed")


def by_label(labels) -> list[str]:
    """Labels in drawing order: all indications first, then the indications alphabetically."""
    return sorted(set(labels), key=lambda label: (label != ALL_INDICATIONS, label))


def lines_of(frame: pl.DataFrame, along: str) -> dict[str, dict[str, pl.DataFrame]]:
    """Return a figure's rows per instrument and label (whole_and_by_indication's), each line's sorted by along.

    Split once: filtering each line's rows out of the cohort's frame, line by line, took most of the time of
    twenty-one cohorts' relief curves and trajectories.
    """
    lines: dict[str, dict[str, pl.DataFrame]] = {}
    for (instrument, label), rows in frame.sort(along).partition_by(["instrument", "label"], as_dict=True).items():
        lines.setdefault(instrument, {})[label] = rows
    return lines


def human(code: str) -> str:
    """Return a code as people write it (bipolar_depression: Bipolar depression; crps: CRPS), escaped."""
    words = [ACRONYMS.get(word, word) for word in str(code).split("_")]
    text = " ".join(words)
    return html.escape(text[:1].upper() + text[1:])


def escaped(value: object) -> str:
    return html.escape(str(value))


def indication_colour(code: str) -> str:
    if code == ALL_INDICATIONS:
        return "#333333"
    if code in INDICATION_COLOURS:
        return INDICATION_COLOURS[code]
    return COLOURS[int(hashlib.sha1(code.encode()).hexdigest(), 16) % len(COLOURS)]


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Whose page: the network, or one clinic; says which dimension values hold its splits."""

    clinic: str | None = None

    @property
    def title(self) -> str:
        return "Network overview" if self.clinic is None else f"Clinic: {self.clinic}"

    @property
    def file_name(self) -> str:
        """network.html, or the clinic's page: a readable slug and a digest of the id, so that two ids that
        differ only in case, punctuation or script never share a page."""
        if self.clinic is None:
            return "network.html"
        digest = hashlib.sha256(self.clinic.encode()).hexdigest()[:8]
        return f"clinic-{slug(self.clinic)}-{digest}.html"

    @property
    def whole(self) -> tuple[str, str]:
        return (NETWORK, NETWORK_VALUE) if self.clinic is None else (CLINIC, self.clinic)

    def split(self, by: str) -> tuple[str, pl.Expr]:
        """Return the dimension and an expression giving the split's label (indication or month)."""
        if self.clinic is None:
            return by, pl.col("dimension_value")
        return CLINIC_SPLITS[by], pl.col("dimension_value").str.split(SPLIT_SEPARATOR).list.last()

    @property
    def owner(self) -> str:
        """Whose rows the cohort's are (rows_of): the clinic's id as split_id writes it, or the network's."""
        return NETWORK_VALUE if self.clinic is None else split_id(self.clinic)

    def of_whole(self, frame: pl.DataFrame) -> pl.DataFrame:
        dimension, value = self.whole
        return rows_of(frame, dimension, self.owner).filter(pl.col("dimension_value") == value)

    def of_split(self, frame: pl.DataFrame, by: str) -> pl.DataFrame:
        dimension, label = self.split(by)
        selected = rows_of(frame, dimension, self.owner)
        if self.clinic is not None:
            selected = selected.filter(pl.col("dimension_value").str.starts_with(f"{self.owner}{SPLIT_SEPARATOR}"))
        return selected.with_columns(label.alias("label"))


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
    if percent:  # a rate's axis is never cut: 0 to 100%
        figure.axis("yaxis").update(tickformat=".0%", range=[0, 1.05])
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
    # At the top left: the top right is the Plotly toolbar's, which would cover the menu.
    figure.layout["updatemenus"] = [dict(buttons=buttons, x=0.0, xanchor="left", y=1.15, yanchor="top")]
    for trace, instrument in zip(figure.data, trace_instruments, strict=True):
        trace["visible"] = instrument == instruments[0]
    return figure


def trends(data: Publishable, cohort: Cohort) -> Figure | None:
    """Response and remission by period of induction start, at the finest period disclosure control lets through."""
    rates = data.trends.filter(
        (pl.col("cohort") == cohort.owner)
        & (pl.col("dimension").is_in(list(CLINIC_SPLITS.values())) == (cohort.clinic is not None))
        & (pl.col("series_kind") == "induction")
    )
    # An instrument whose response shows no point is left out of the menu rather than offered as an empty chart.
    drawn = set(rates.filter(pl.col("response_rate").is_not_null())["instrument"])
    if not drawn:
        return None
    figure, owners = Figure(), []
    for instrument in [i for i in (*MOOD_INSTRUMENTS, *PAIN_INSTRUMENTS) if i in drawn]:
        rows = rates.filter(pl.col("instrument") == instrument).sort("label")
        for measure, colour in (("response", COLOURS[0]), ("remission", COLOURS[2])):
            rate = rows[f"{measure}_rate"]
            # A trend's remission is left out where no period grain shows enough of it (publishable.trend_rows).
            name = (
                f"{measure} rate ({PERIOD_NAMES[rows['period'][0]]})"
                if rate.is_not_null().any()
                else f"{measure} rate: too few per period to show"
            )
            figure.add_trace(
                scatter(
                    x=rows["label"].to_list(),
                    y=rate.to_list(),
                    mode="lines+markers",
                    name=name,
                    line=dict(color=colour),
                    connectgaps=False,
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(rows[f"{measure}_ci_high"] - rate).to_list(),
                        arrayminus=(rate - rows[f"{measure}_ci_low"]).to_list(),
                        thickness=1,
                    ),
                    hovertemplate="%{x}: %{y:.1%}<extra>" + measure + "</extra>",
                )
            )
            owners.append(instrument)
    layout(
        figure,
        "Response and remission by when the induction started (95% Wilson intervals)",
        "share of series",
        percent=True,
    )
    figure.axis("xaxis")["type"] = "category"
    # Clear of the y axis's "0%": a run of months' label ("2023-12 to 2024-08") reaches left of its tick.
    figure.axis("xaxis")["ticklabelstandoff"] = 8
    return instrument_menu(figure, owners)


def relief_curves(data: Publishable, cohort: Cohort, instruments: tuple[str, ...], domain: str) -> Figure | None:
    curves = whole_and_by_indication(data.relief_survival, cohort).filter(
        pl.col("instrument").is_in(instruments) & (pl.col("series_kind") == "induction")
    )
    if curves.is_empty():
        return None
    figure, owners, lines = Figure(), [], lines_of(curves, "day")
    for instrument in [i for i in instruments if i in lines]:
        for code in by_label(lines[instrument]):
            rows = lines[instrument][code]
            days = [0, *rows["day"].to_list()]
            colour, label = indication_colour(code), human(code)
            # The band: its lower step line, then the upper one filled down to it.
            for bound, fill in (("ci_low", None), ("ci_high", "tonexty")):
                figure.add_trace(
                    scatter(
                        x=days,
                        y=[1.0, *rows[bound].to_list()],
                        mode="lines",
                        fill=fill,
                        fillcolor=_faint(colour),
                        line=dict(width=0),
                        hoverinfo="skip",
                        showlegend=False,
                        name=f"{label} 95% band",
                    )
                )
            figure.add_trace(
                scatter(
                    x=days,
                    y=[1.0, *rows["survival"].to_list()],
                    # Straight lines between the published points: disclosure control leaves out the steps
                    # in between, and a step line would say that no one relapsed there.
                    mode="lines+markers",
                    marker=dict(size=4),
                    line=dict(color=colour),
                    name=label,
                    hovertemplate="day %{x}: %{y:.1%} still relieved<extra>" + label + "</extra>",
                )
            )
            owners += [instrument, instrument, instrument]
    layout(
        figure,
        f"How long relief lasts after an induction: {domain} (Kaplan-Meier, 95% band, at points with enough "
        "responders followed)",
        "share of responders still relieved",
        "days since last infusion",
        percent=True,
    )
    return instrument_menu(figure, owners)


def _faint(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.15)"


def trajectory(data: Publishable, cohort: Cohort, instruments: tuple[str, ...], domain: str) -> Figure | None:
    points = whole_and_by_indication(data.trajectories, cohort).filter(
        pl.col("instrument").is_in(instruments) & pl.col("mean_pct_change").is_not_null()
    )
    if points.is_empty():
        return None
    figure, owners, lines = Figure(), [], lines_of(points, "infusions_received")
    for instrument in [i for i in instruments if i in lines]:
        for code in by_label(lines[instrument]):
            rows = lines[instrument][code]
            mean, label = rows["mean_pct_change"], human(code)
            figure.add_trace(
                scatter(
                    x=rows["infusions_received"].to_list(),
                    y=mean.to_list(),
                    mode="lines+markers",
                    name=label,
                    line=dict(color=indication_colour(code)),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(rows["ci_high"] - mean).to_list(),
                        arrayminus=(mean - rows["ci_low"]).to_list(),
                        thickness=1,
                    ),
                    # "7+": the scores after 7 or more infusions, pooled where each number alone is too few.
                    customdata=rows["infusions_label"].to_list(),
                    marker=dict(symbol=["diamond" if "+" in x else "circle" for x in rows["infusions_label"]]),
                    hovertemplate="after %{customdata} infusions: %{y:.0f}%<extra>" + label + "</extra>",
                )
            )
            owners.append(instrument)
    layout(
        figure,
        f"Mean change from baseline by infusion number: {domain} (95% intervals)",
        "% change from baseline",
        "infusions received (a diamond pools that number and more)",
    )
    return instrument_menu(figure, owners)


def waterfall(data: Publishable, cohort: Cohort) -> Figure | None:
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


def completion_funnel(data: Publishable, cohort: Cohort) -> Figure | None:
    """Share of inductions reaching each infusion, at the steps whose drop-outs may be shown."""
    funnel = cohort.of_whole(data.completion_funnel).sort("infusion_number")
    if funnel.filter(pl.col("share_reaching").is_not_null()).is_empty():
        return None
    figure = Figure(
        bar(
            x=[f"infusion {n}" for n in funnel["infusion_number"].to_list()],
            y=funnel["share_reaching"].to_list(),
            text=[f"{c:,}" for c in funnel["inductions_reaching"].to_list()],
            textposition="outside",
            marker=dict(color=COLOURS[0]),
            hovertemplate="%{x}: %{y:.1%} of inductions (%{text})<extra></extra>",
        )
    )
    return layout(
        figure, "Completion funnel: share of inductions reaching each infusion", "share of inductions", percent=True
    )


def booster_intervals(data: Publishable, cohort: Cohort, reader: str | None = None) -> Figure | None:
    """Booster intervals: on the network page every clinic's (for the network owner; reader None), else the
    cohort's beside the network's (a clinic director's network page shows their own clinic only)."""
    if cohort.clinic is None and reader is None:
        rows = data.booster_intervals.filter(
            (pl.col("dimension") == CLINIC) & pl.col("dimension_value").is_in(data.clinics)
        ).with_columns(label=pl.col("dimension_value"))
    else:
        rows = pl.concat(
            [
                Cohort(cohort.clinic or reader).of_whole(data.booster_intervals),
                Cohort().of_whole(data.booster_intervals),
            ]
        ).with_columns(label=pl.col("dimension_value").replace({NETWORK_VALUE: NETWORK}))
    own = cohort.clinic or reader
    shown = pl.col("median_days").is_not_null()
    withheld = own is not None and rows.filter((pl.col("label") == own) & shown).is_empty()
    rows = rows.filter(shown).with_columns(
        label=pl.when(pl.col("dimension") == CLINIC)
        .then(pl.col("label").replace(data.clinic_names))
        .otherwise(pl.col("label"))
    )
    if rows.is_empty():
        return None
    if withheld:  # the network's bar alone would read as the clinic's: its empty place says why it is empty
        rows = pl.concat([rows.clear(1).with_columns(label=pl.lit(f"{data.name_of(own)}: too few to show")), rows])
    median = rows["median_days"]
    figure = Figure(
        bar(
            x=[escaped(label) for label in rows["label"].to_list()],
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


def safety_events(data: Publishable, cohort: Cohort) -> Figure | None:
    rows = cohort.of_whole(data.safety)
    if rows.is_empty():
        return None
    row = rows.row(0, named=True)
    values = [row[f"{code}_per_100"] for code in ADVERSE_EVENTS]
    if all(v is None for v in values):
        return None
    figure = Figure(
        bar(
            x=[human(code) for code in ADVERSE_EVENTS],
            y=values,
            marker=dict(color=COLOURS[1]),
            hovertemplate="%{x}: %{y:.1f} per 100 infusions<extra></extra>",
        )
    )
    return layout(figure, "Adverse events per 100 infusions that recorded them", "per 100 infusions")


def dissociation(data: Publishable, cohort: Cohort) -> Figure | None:
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
    layout(figure, "Dissociation by infusion number during inductions", "per 100 infusions", "infusion number")
    figure.axis("yaxis")["rangemode"] = "tozero"  # a rate's axis starts at 0
    return figure


def funnel_plot(data: Publishable, cohort: Cohort, reader: str | None = None) -> Figure | None:
    """Return clinics' response rates against their size with 95% and 99.8% control limits around the network.

    reader: the clinic whose director reads the page: other clinics are drawn but not named. None: the network
    owner, who sees every name.
    """
    phq9_inductions = (pl.col("series_kind") == "induction") & (pl.col("instrument") == "phq9")
    rates = data.response_rates.filter(phq9_inductions)
    network = Cohort().of_whole(data.response_rates).filter(phq9_inductions)
    clinics = rates.filter(
        (pl.col("dimension") == CLINIC)
        & pl.col("response_rate").is_not_null()
        & pl.col("dimension_value").is_in(data.clinics)
    )
    if network.is_empty() or network["response_rate"][0] is None or clinics.is_empty():
        return None
    p0 = network["response_rate"][0]
    smallest, largest = clinics["evaluable_count"].min(), clinics["evaluable_count"].max()
    # The limits are drawn over the clinics' sizes, from a third of the smallest: drawn from 5 series they spread
    # to 0 and 100%, and twenty clinics of tens of thousands of series lay flat along one line in between.
    # A geometric grid: smooth curves in a fixed number of points, however large the clinics grow.
    sizes = sorted({round(n) for n in np.geomspace(max(smallest / 3, 5), max(largest * 1.2, 20), 200)})
    figure = Figure()
    shown = [p0, *clinics["response_rate"].to_list()]
    for z, name, dash in ((1.959964, "95% limits", "dash"), (3.090232, "99.8% limits", "dot")):
        for sign in (1, -1):
            # Rounded as every published rate is: the limits must not print the network rate precisely.
            limits = [round(min(max(p0 + sign * z * (p0 * (1 - p0) / n) ** 0.5, 0), 1), 3) for n in sizes]
            shown += limits
            figure.add_trace(
                scatter(
                    x=sizes,
                    y=limits,
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
    is_this_clinic = pl.col("dimension_value") == (cohort.clinic or "")
    # No name is written beside a dot: twenty names (or "another clinic" twenty times) covered one another and
    # the dots, and a single label still covered its neighbours. The page's clinic is the large red dot, drawn
    # last (on top) and named in the legend; the others are named on hover, for the network owner only.
    others, this = clinics.filter(~is_this_clinic), clinics.filter(is_this_clinic)
    other_names = [
        escaped(data.name_of(c)) if reader is None else "another clinic" for c in others["dimension_value"].to_list()
    ]
    this_name = [escaped(data.name_of(c)) for c in this["dimension_value"].to_list()]
    for rows, names, legend, marker in (
        (others, other_names, "other clinics", dict(size=9, color=COLOURS[0])),
        (
            this,
            this_name,
            this_name[0] if this_name else "",
            dict(size=14, color=COLOURS[1], line=dict(color="white", width=1)),
        ),
    ):
        if rows.height:
            figure.add_trace(
                scatter(
                    x=rows["evaluable_count"].to_list(),
                    y=rows["response_rate"].to_list(),
                    mode="markers",
                    text=names,
                    name=legend,
                    marker=marker,
                    hovertemplate="%{text}: %{y:.1%} of %{x} series<extra></extra>",
                )
            )
    layout(
        figure,
        "PHQ-9 response after induction: clinics against the network (funnel plot)",
        "response rate",
        "evaluable induction series",
        percent=True,
    )
    # The axis spans the limits and the clinics, not 0 to 100%: what the plot shows is how far each clinic lies
    # from the network against the chance spread its size allows, which the limits mark (at a million patients
    # that spread is a point or two).
    low, high = max(min(shown) - 0.03, 0.0), min(max(shown) + 0.03, 1.05)
    figure.axis("yaxis").update(range=[low, high], tickformat=".1%" if high - low < 0.1 else ".0%")
    return figure


def series_statuses(data: Publishable, cohort: Cohort) -> Figure | None:
    rows = cohort.of_whole(data.statuses).filter(pl.col("series_count").is_not_null()).sort("status")
    if rows.is_empty():
        return None
    figure = Figure(
        bar(
            x=[human(s) for s in rows["status"].to_list()],
            y=rows["series_count"].to_list(),
            marker=dict(color=COLOURS[8]),
        )
    )
    return layout(figure, "Series and instrument pairs by status (missing baselines and follow-ups)", "pairs")


def case_mix_plot(data: Publishable, cohort: Cohort, reader: str | None = None) -> Figure | None:
    """Return each clinic's observed / expected PHQ-9 responders after induction with its 95% interval (Byar),
    expected at the network's rate for series of the same indication and baseline severity (spec §10.5).

    Beside the funnel plot, which compares raw rates: a clinic outside the funnel but with an interval around 1
    differs because of its patients, not its care. reader: as for funnel_plot, other clinics are not named.
    """
    rows = data.case_mix.filter(
        (pl.col("series_kind") == "induction")
        & (pl.col("instrument") == "phq9")
        & pl.col("clinic_id").is_in(data.clinics)
        & pl.col("observed_expected_ratio").is_not_null()
    ).sort("observed_expected_ratio")
    if rows.is_empty():
        return None
    names = [escaped(data.name_of(c)) if reader is None or c == reader else "another clinic" for c in rows["clinic_id"]]
    # Same-named "another clinic" rows would share one category: number them so each keeps its own line, 1 to
    # n without a gap where the page's clinic lies between them.
    others = itertools.count(1)
    labels = [f"{name} ({next(others)})" if name == "another clinic" else name for name in names]
    mine = [c == cohort.clinic for c in rows["clinic_id"]]
    ratio = rows["observed_expected_ratio"].to_list()
    figure = Figure(
        scatter(
            x=ratio,
            y=labels,
            mode="markers",
            name="observed / expected (95% interval)",
            marker=dict(size=[14 if m else 10 for m in mine], color=[COLOURS[1] if m else COLOURS[0] for m in mine]),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[high - r for high, r in zip(rows["ratio_ci_high"], ratio, strict=True)],
                arrayminus=[r - low for low, r in zip(rows["ratio_ci_low"], ratio, strict=True)],
            ),
            customdata=list(
                zip(rows["observed_responders"], rows["expected_responders"], rows["crude_response_rate"], strict=True)
            ),
            hovertemplate="%{y}: %{customdata[0]} responders, %{customdata[1]} expected (O/E %{x:.2f}); "
            "crude rate %{customdata[2]:.1%}<extra></extra>",
        ),
        scatter(
            x=[1, 1],
            y=[labels[0], labels[-1]],
            mode="lines",
            name="as expected from the case mix",
            line=dict(color="#333333", dash="dash"),
            hoverinfo="skip",
        ),
    )
    figure = layout(
        figure,
        "PHQ-9 response after induction, adjusted for case mix: observed / expected responders",
        "",
        "observed / expected responders (1 = as the case mix predicts)",
    )
    figure.layout["height"] = max(300, 120 + 40 * rows.height)
    # The figure is short for few clinics: a legend placed a fifth of the plot's height below it (layout) sat
    # against the axis title. It sits at the figure's foot instead, under a margin that holds the axis title.
    figure.layout["legend"] = dict(orientation="h", yref="container", y=0, yanchor="bottom")
    figure.layout["margin"] = {**figure.layout["margin"], "b": 100}
    figure.axis("yaxis")["automargin"] = True
    return figure
