"""Raw tables: the clinics' files as sent, every column as text, every row numbered."""

from __future__ import annotations

import dagster as dg

from pipelines.ingest.contract import CONTRACTS, PARSE_ERROR, RecordContract
from pipelines.ingest.csv_inbox import InboxError, raw_frame_from_file
from pipelines.resources import Inbox, Warehouse, replace_table


def raw_asset(contract: RecordContract) -> dg.AssetsDefinition:
    """Return the asset that reads one record type's inbox file into raw.<record_type>."""

    @dg.asset(
        key=["raw", contract.record_type],
        group_name="raw",
        kinds={"csv", "polars", "duckdb"},
        description=f"One row per data row of {contract.file_name}, exactly as sent: every column as text.",
    )
    def read_inbox_file(inbox: Inbox, warehouse: Warehouse) -> dg.MaterializeResult:
        path = inbox.file(contract.file_name)
        if not path.is_file():
            raise InboxError(f"{contract.file_name}: not found in the inbox {inbox.path}")
        frame = raw_frame_from_file(path, contract, contract.file_name)
        with warehouse.connect() as con:
            replace_table(con, f"raw.{contract.record_type}", frame)
        extra = sorted(set(frame.columns) - set(contract.columns) - {c for c in frame.columns if c.startswith("_")})
        return dg.MaterializeResult(
            metadata={
                "rows_read": frame.height,
                "malformed_rows": frame.get_column(PARSE_ERROR).is_not_null().sum(),
                "extra_columns_kept": ", ".join(extra) or "none",
                "source_file": contract.file_name,
            }
        )

    read_inbox_file.__name__ = f"raw_{contract.record_type}"
    return read_inbox_file


raw_assets = [raw_asset(contract) for contract in CONTRACTS]
