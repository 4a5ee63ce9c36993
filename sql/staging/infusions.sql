-- Title:   Accepted infusion sessions, typed
-- Grain:   one row per (patient_id, infused_at)
-- Inputs:  quarantine.infusions_validated
-- Rule:    shared spec §8-9: rows without a reason; of exact duplicates the first row is kept
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows
-- Materialized: view; staging only filters and renames the validated rows, which are stored once

with validated as (
    select * from quarantine.infusions_validated
),

final as (
    select
        patient_id,
        infused_at,
        dose_mg_per_kg,
        duration_min,
        provider_id,
        bp_systolic_pre,
        bp_diastolic_pre,
        bp_systolic_max,
        bp_diastolic_max,
        heart_rate_max,
        spo2_min,
        adverse_events,
        is_adverse_events_recorded,
        rescue_medication,
        source_file,
        row_number as source_row_number
    from validated
    where reason is null and not is_exact_duplicate
)

select * from final
