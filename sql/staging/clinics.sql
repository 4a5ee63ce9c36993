-- Title:   Accepted clinics with the time zone their patients' timestamps are read in
-- Grain:   one row per clinic_id
-- Inputs:  quarantine.clinics_validated
-- Rule:    shared spec §10.1: a clinic without a timezone takes the clinic_timezone setting; pages name a clinic by clinic_name, else clinic_id

with validated as (
    select * from quarantine.clinics_validated
),

final as (
    select
        clinic_id,
        clinic_name,
        coalesce(timezone, getvariable('clinic_timezone')) as timezone,
        timezone is null as is_default_timezone,
        source_file,
        row_number as source_row_number
    from validated
    where reason is null and not is_exact_duplicate
)

select * from final
