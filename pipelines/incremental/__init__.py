"""Incremental refresh: what changed in the inbox since the last publication, and which patients to recompute.

Every table the pipeline derives per patient (validation, staging, the outcome
engine, the per-series marts) depends only on that patient's rows, the seeds,
the clinical parameters, the clinic timezone and the run's as-of time. So a
refresh after a published one recomputes only the patients with new, changed
or removed inbox rows (plus those whose rows the as-of time judges differently
now), merges them into a copy of the published warehouse, and rebuilds the
whole-table aggregates from the merged tables. The result equals a full
refresh; tests/test_incremental.py holds it to that.

- file_states: what a refresh knew of each inbox file (size, time, digest), to tell unchanged, appended, changed;
- raw_store: the raw rows kept between runs (<warehouse>.raw-rows, views in <warehouse>.raw), read anew or appended;
- policy: whether this run may continue from the kept state, and which patients it recomputes;
- scope: the SQL that restricts a per-patient table to those patients and merges them back.

The raw store is stamped with the generation of the warehouse published from
it. Any doubt (no published warehouse, a stamp that does not match because a
run failed, other code) means a full refresh.
"""
