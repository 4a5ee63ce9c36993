"""What data exists: one Dagster asset per table or report."""
