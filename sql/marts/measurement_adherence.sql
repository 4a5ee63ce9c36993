-- Title:   Share of infusions with a pre-infusion score of the patient's main instrument
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.infusion_sessions
-- Rule:    the main instrument is the one the patient was scored on most; a score counts when taken on the infusion's day, at or before it

with infusions as (
    select * from marts.infusion_sessions
),

counted_per_clinic_and_indication as (
    -- Counted once per clinic and indication, then added up per cohort (safety_summary says why).
    select
        clinic_id,
        primary_indication,
        count(*) as infusion_count,
        count(*) filter (where has_pre_infusion_score) as measured_infusion_count
    from infusions
    group by all
),

cohorts as (
    select
        infusion_count,
        measured_infusion_count,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from counted_per_clinic_and_indication
),

final as (
    select
        dimension,
        dimension_value,
        sum(infusion_count)::bigint as infusion_count,
        sum(measured_infusion_count)::bigint as measured_infusion_count,
        sum(measured_infusion_count) / sum(infusion_count) as adherence_rate
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value
