"""The cohort vocabulary of every statistics mart and page: which dimensions a row counts in, and their names.

A mart's (dimension, dimension_value) names one cohort: the whole network
("network", "all"), a clinic, an indication, a month, quarter or year of series
start ("2026-03", "2026-Q1", "2026-H1", "2026"), a provider or dose band
(spec §10.6), or a split of one clinic ("clinic_indication": "<clinic> / <indication>", with a " / " inside
either id written as " ∕ ", a division slash: split_id). The SQL marts
name the same cohorts through the cohorts_of macro in sql/functions.sql; a test
holds the two to one vocabulary.
"""

from __future__ import annotations

import polars as pl

NETWORK = "network"
NETWORK_VALUE = "all"
CLINIC = "clinic"
INDICATION = "indication"
START_MONTH = "start_month"
START_QUARTER = "start_quarter"
START_HALF = "start_half"
START_YEAR = "start_year"
# Spec §10.6: a series' provider (who gave most of its infusions) and the band of its mean dose.
PROVIDER = "provider"
DOSE_BAND = "dose_band"
BREAKDOWNS = (PROVIDER, DOSE_BAND)
# The provider of a series none of whose infusions named one.
PROVIDER_NOT_RECORDED = "not recorded"
# The periods of series start, finest first: a page shows the finest that disclosure control lets through.
START_PERIODS = (START_MONTH, START_QUARTER, START_HALF, START_YEAR)
# A clinic's own split by indication or period, valued "<clinic><SPLIT_SEPARATOR><indication or period>".
CLINIC_SPLITS = {
    INDICATION: "clinic_indication",
    START_MONTH: "clinic_start_month",
    START_QUARTER: "clinic_start_quarter",
    START_HALF: "clinic_start_half",
    START_YEAR: "clinic_start_year",
    PROVIDER: "clinic_provider",
    DOSE_BAND: "clinic_dose_band",
}
SPLIT_SEPARATOR = " / "
# Within a split's value, the separator in a clinic's or a provider's own id ("North / East", "Smith / Jones") is
# written as a division slash: else clinic North would take clinic "North / East"'s splits for its own.
SEPARATOR_IN_IDS = " \u2215 "


def split_id(identifier: str) -> str:
    """Return an id as it is written in a split's value (no SPLIT_SEPARATOR in it)."""
    return identifier.replace(SPLIT_SEPARATOR, SEPARATOR_IN_IDS)


def split_ids(identifiers: pl.Expr) -> pl.Expr:
    """split_id over a column."""
    return identifiers.str.replace_all(SPLIT_SEPARATOR, SEPARATOR_IN_IDS, literal=True)


DIMENSIONS = (NETWORK, CLINIC, INDICATION, *START_PERIODS, *BREAKDOWNS, *CLINIC_SPLITS.values())
# The dimensions of the SQL marts (sql/functions.sql cohorts_of): no month, no clinic split.
SQL_DIMENSIONS = (NETWORK, CLINIC, INDICATION)
