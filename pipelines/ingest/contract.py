"""The CSV inbox contract: which file holds which record type and which columns it must have."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class RecordContract:
    """The columns of one record type's file; every value is read as text and typed in SQL."""

    record_type: str
    file_name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    has_items: bool = False
    # Rows of one patient (keyed by patient_id): a change recomputes that patient. Otherwise reference rows,
    # whose change recomputes every patient.
    is_per_patient: bool = True
    # The inbox must hold the file unless it has mappings; an optional file may be left out.
    is_required_file: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


PATIENTS = RecordContract(
    record_type="patients",
    file_name="patients.csv",
    required=("patient_id", "clinic_id", "primary_indication"),
    optional=("birth_year", "sex", "referral_source"),
)
INFUSIONS = RecordContract(
    record_type="infusions",
    file_name="infusions.csv",
    required=("patient_id", "infused_at"),
    optional=(
        "dose_mg_per_kg",
        "duration_min",
        "provider_id",
        "bp_systolic_pre",
        "bp_diastolic_pre",
        "bp_systolic_max",
        "bp_diastolic_max",
        "heart_rate_max",
        "spo2_min",
        "adverse_events",
        "rescue_medication",
    ),
)
ASSESSMENTS = RecordContract(
    record_type="assessments",
    file_name="assessments.csv",
    required=("patient_id", "instrument", "administered_at", "score"),
    has_items=True,
)
# Spec §10.1: the clinics, each with its name and IANA time zone; optional.
CLINICS = RecordContract(
    record_type="clinics",
    file_name="clinics.csv",
    required=("clinic_id",),
    optional=("clinic_name", "timezone"),
    is_per_patient=False,
    is_required_file=False,
)
CONTRACTS = (CLINICS, PATIENTS, INFUSIONS, ASSESSMENTS)
RECORD_TYPES = tuple(contract.record_type for contract in CONTRACTS)
PER_PATIENT_RECORD_TYPES = tuple(contract.record_type for contract in CONTRACTS if contract.is_per_patient)
CONTRACT_BY_TYPE = {contract.record_type: contract for contract in CONTRACTS}

ITEM_COLUMN = re.compile(r"item_([1-9][0-9]?)")

# Columns the reader adds to every raw table. They start with an underscore so
# that they cannot collide with a clinic's own column names.
SOURCE_FILE = "_source_file"
ROW_NUMBER = "_row_number"
# The physical line of the file a row starts on (the header is line 1); null for sources without lines.
LINE_NUMBER = "_line_number"
ITEM_VALUES = "_item_values"
PARSE_ERROR = "_parse_error"


def item_values_sql(columns: list[str]) -> str:
    """Return the SQL of _item_values over a raw assessments relation with these columns.

    item_1..item_n (n = the highest item column present; absent ones null) as
    one list, for rows with any non-blank item; null for the others, which
    most rows are. Built by DuckDB where the rows are read: a list column
    built in Polars for millions of rows costs more than the whole CSV parse.
    """
    numbers = sorted(int(m.group(1)) for column in columns if (m := ITEM_COLUMN.fullmatch(column)))
    if not numbers:
        return f"null::varchar[] as {ITEM_VALUES}"
    items = [f'"item_{k}"' if k in numbers else "null::varchar" for k in range(1, numbers[-1] + 1)]
    any_given = " or ".join(f"trim(\"item_{k}\") <> ''" for k in numbers)
    return f"case when {any_given} then [{', '.join(items)}] end as {ITEM_VALUES}"
