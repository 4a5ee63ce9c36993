-- Title:   Share of infusions with a pre-infusion score of the patient's main instrument
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.infusion_sessions
-- Rule:    the main instrument is the one the patient was scored on most; a score counts when taken on the infusion's day, at or before it

with infusions as (
    select * from marts.infusion_sessions
),

cohorts as (
    select
        has_pre_infusion_score,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from infusions
),

final as (
    select
        dimension,
        dimension_value,
        count(*) as infusion_count,
        count(*) filter (where has_pre_infusion_score) as measured_infusion_count,
        count(*) filter (where has_pre_infusion_score) / count(*) as adherence_rate
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value
