"""Cohort statistics (shared spec §5) as plain Polars functions, checked against statsmodels and lifelines."""
