"""Plain functions from warehouse aggregates to published pages: no Dagster here."""
