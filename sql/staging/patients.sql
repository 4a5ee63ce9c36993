-- Title:   Accepted patients, typed
-- Grain:   one row per patient_id
-- Inputs:  quarantine.patients_validated
-- Rule:    shared spec §8-9: rows without a reason; of exact duplicates the first row is kept
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows
-- Materialized: view; staging only filters and renames the validated rows, which are stored once

with validated as (
    select * from quarantine.patients_validated
),

final as (
    select
        patient_id,
        clinic_id,
        primary_indication,
        birth_year,
        sex,
        referral_source,
        source_file,
        row_number as source_row_number
    from validated
    where reason is null and not is_exact_duplicate
)

select * from final
