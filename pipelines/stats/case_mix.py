"""Case-mix-adjusted comparison of clinics (shared spec §10.5): observed and expected responders, O/E by Byar.

Clinics treat different patients, so a clinic's responders are compared with
the number expected had each of its series responded at the network's rate for
series like it: same instrument and series kind, same primary indication, same
baseline severity band (indirect standardisation).
"""

from __future__ import annotations

import polars as pl

from pipelines.stats.intervals import byar_bounds

# PHQ-9's severity bands (Kroenke 2001), as spec §10.5 names them; a baseline of 1-4 (minimal) is a band too.
PHQ9_BANDS = ((0, "0-4"), (5, "5-9"), (10, "10-14"), (15, "15-19"), (20, "20-27"))
STRATUM = ["instrument", "series_kind", "primary_indication", "severity_band"]
COMPARISON_KEY = ["clinic_id", "instrument", "series_kind"]


def severity_band() -> pl.Expr:
    """Return the baseline's severity band: PHQ-9's bands, else the third of the instrument's range it lies in.

    Needs baseline_score, score_min and score_max. Thirds are [min, min + r/3), [min + r/3, min + 2r/3),
    [min + 2r/3, max] with r = max - min, named by their bounds.
    """
    phq9 = pl.lit(PHQ9_BANDS[0][1])
    for lowest, name in PHQ9_BANDS[1:]:
        phq9 = pl.when(pl.col("baseline_score") >= lowest).then(pl.lit(name)).otherwise(phq9)
    low, high = pl.col("score_min"), pl.col("score_max")
    third = (high - low) / 3

    def bound(value: pl.Expr) -> pl.Expr:
        return value.round(1).cast(pl.String).str.strip_suffix(".0")

    thirds = (
        pl.when(pl.col("baseline_score") < low + third)
        .then(pl.concat_str(pl.lit("lowest third ("), bound(low), pl.lit("-<"), bound(low + third), pl.lit(")")))
        .when(pl.col("baseline_score") < low + 2 * third)
        .then(
            pl.concat_str(
                pl.lit("middle third ("), bound(low + third), pl.lit("-<"), bound(low + 2 * third), pl.lit(")")
            )
        )
        .otherwise(
            pl.concat_str(pl.lit("highest third ("), bound(low + 2 * third), pl.lit("-"), bound(high), pl.lit(")"))
        )
    )
    return pl.when(pl.col("instrument") == "phq9").then(phq9).otherwise(thirds).alias("severity_band")


def expected_from_reference(
    study: pl.LazyFrame, reference: pl.LazyFrame, key: list[str], by: list[str]
) -> pl.LazyFrame:
    """Return per `by` group the observed events and those expected at the reference's rates (indirect standardisation).

    study: one row per (by, key) stratum with `count` (people) and `observed` (events); reference: one row per key
    with `rate`. expected = sum over the group's strata of count x rate.
    """
    return (
        study.join(reference.select(*key, "rate"), on=key, how="left")
        .group_by(by)
        .agg(
            evaluable_count=pl.col("count").sum().cast(pl.Int64),
            observed=pl.col("observed").sum().cast(pl.Int64),
            expected=(pl.col("count") * pl.col("rate")).sum(),
        )
    )


CASE_MIX_CELL = [
    "clinic_id",
    *[column for column in STRATUM if column != "severity_band"],
    "baseline_score",
    "score_min",
    "score_max",
]


def case_mix_cells(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return the evaluable series and their responders per clinic, stratum and baseline score.

    series_outcomes: evaluable or not, with score_min and score_max of its instrument. Counted per baseline
    score first and banded after (case_mix_comparison_from_cells): a few thousand distinct scores are named,
    not millions of series.
    """
    return (
        series_outcomes.filter(pl.col("status") == "evaluable")
        .group_by(CASE_MIX_CELL)
        .agg(series_count=pl.len().cast(pl.Int64), responder_count=pl.col("is_responder").sum().cast(pl.Int64))
    )


def case_mix_comparison_from_series_outcomes(series_outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Return case_mix_comparison_from_cells of the series' cells."""
    return case_mix_comparison_from_cells(case_mix_cells(series_outcomes))


def case_mix_comparison_from_cells(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Return per clinic, instrument and series kind: evaluable series, observed and expected responders, O/E and
    its 95% interval by Byar's approximation, the clinic's crude response rate and the network's.

    cells: case_mix_cells.
    """
    # Collected once, as the network's rates and the clinics' expected counts both read it.
    strata = (
        cells.rename({"series_count": "count", "responder_count": "observed"})
        .with_columns(severity_band())
        .group_by("clinic_id", *STRATUM)
        .agg(pl.col("count", "observed").sum())
        .collect()
        .lazy()
    )
    network = (
        strata.group_by(STRATUM)
        .agg(pl.col("count", "observed").sum())
        .with_columns(rate=pl.col("observed") / pl.col("count"))
    )
    network_rates = network.group_by("instrument", "series_kind").agg(
        network_response_rate=pl.col("observed").sum() / pl.col("count").sum()
    )
    low, high = byar_bounds(pl.col("observed"))
    return (
        expected_from_reference(strata, network, STRATUM, COMPARISON_KEY)
        .with_columns(
            observed_expected_ratio=pl.col("observed") / pl.col("expected"),
            ratio_ci_low=low / pl.col("expected"),
            ratio_ci_high=high / pl.col("expected"),
            crude_response_rate=pl.col("observed") / pl.col("evaluable_count"),
        )
        # No responder expected anywhere (a network rate of 0 in every stratum): no ratio to give.
        .with_columns(
            [
                pl.when(pl.col("expected") > 0).then(pl.col(c)).alias(c)
                for c in ("observed_expected_ratio", "ratio_ci_low", "ratio_ci_high")
            ]
        )
        .join(network_rates, on=["instrument", "series_kind"], how="left")
        .rename({"observed": "observed_responders", "expected": "expected_responders"})
        .select(
            *COMPARISON_KEY,
            "evaluable_count",
            "observed_responders",
            "expected_responders",
            "observed_expected_ratio",
            "ratio_ci_low",
            "ratio_ci_high",
            "crude_response_rate",
            "network_response_rate",
        )
        .sort(COMPARISON_KEY)
    )
