"""The cohort vocabulary of every statistics mart and page: which dimensions a row counts in, and their names.

A mart's (dimension, dimension_value) names one cohort: the whole network
("network", "all"), a clinic, an indication, a month, quarter or year of series
start ("2026-03", "2026-Q1", "2026-H1", "2026"), or a split of one clinic
("clinic_indication": "<clinic> / <indication>"). The SQL marts
name the same cohorts through the cohorts_of macro in sql/functions.sql; a test
holds the two to one vocabulary.
"""

from __future__ import annotations

NETWORK = "network"
NETWORK_VALUE = "all"
CLINIC = "clinic"
INDICATION = "indication"
START_MONTH = "start_month"
START_QUARTER = "start_quarter"
START_HALF = "start_half"
START_YEAR = "start_year"
# The periods of series start, finest first: a page shows the finest that disclosure control lets through.
START_PERIODS = (START_MONTH, START_QUARTER, START_HALF, START_YEAR)
# A clinic's own split by indication or period, valued "<clinic><SPLIT_SEPARATOR><indication or period>".
CLINIC_SPLITS = {
    INDICATION: "clinic_indication",
    START_MONTH: "clinic_start_month",
    START_QUARTER: "clinic_start_quarter",
    START_HALF: "clinic_start_half",
    START_YEAR: "clinic_start_year",
}
SPLIT_SEPARATOR = " / "
DIMENSIONS = (NETWORK, CLINIC, INDICATION, *START_PERIODS, *CLINIC_SPLITS.values())
# The dimensions of the SQL marts (sql/functions.sql cohorts_of): no month, no clinic split.
SQL_DIMENSIONS = (NETWORK, CLINIC, INDICATION)
