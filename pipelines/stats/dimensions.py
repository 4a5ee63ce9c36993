"""The cohort vocabulary of every statistics mart and page: which dimensions a row counts in, and their names.

A mart's (dimension, dimension_value) names one cohort: the whole network
("network", "all"), a clinic, an indication, a month of series start, or a split
of one clinic ("clinic_indication": "<clinic> / <indication>"). The SQL marts
name the same cohorts through the cohorts_of macro in sql/functions.sql; a test
holds the two to one vocabulary.
"""

from __future__ import annotations

NETWORK = "network"
NETWORK_VALUE = "all"
CLINIC = "clinic"
INDICATION = "indication"
START_MONTH = "start_month"
# A clinic's own split by indication or month, valued "<clinic><SPLIT_SEPARATOR><indication or month>".
CLINIC_SPLITS = {INDICATION: "clinic_indication", START_MONTH: "clinic_start_month"}
SPLIT_SEPARATOR = " / "
DIMENSIONS = (NETWORK, CLINIC, INDICATION, START_MONTH, *CLINIC_SPLITS.values())
# The dimensions of the SQL marts (sql/functions.sql cohorts_of): no month, no clinic split.
SQL_DIMENSIONS = (NETWORK, CLINIC, INDICATION)
