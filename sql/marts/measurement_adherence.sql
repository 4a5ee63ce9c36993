-- Title:   Share of infusions with a pre-infusion score of the patient's main instrument
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  staging.infusions, staging.assessments, staging.patients
-- Rule:    the main instrument is the one the patient was scored on most; a score counts when taken on the infusion's day, at or before it

with scores_per_instrument as (
    select patient_id, instrument, count(*) as score_count
    from staging.assessments
    where instrument <> 'cadss'  -- a safety measure taken after infusions, never the main instrument
    group by all
),

main_instrument as (
    -- A tie (as many GAD-7 as PHQ-9 scores) goes to the first code alphabetically, so that the
    -- answer does not depend on the order rows were stored in.
    select patient_id, first(instrument order by score_count desc, instrument) as instrument
    from scores_per_instrument
    group by patient_id
),

infusions as (
    select
        i.patient_id,
        i.infused_at,
        p.clinic_id,
        p.primary_indication,
        exists (
            select 1 from staging.assessments as a
            where a.patient_id = i.patient_id and a.instrument = m.instrument
              and a.administered_at <= i.infused_at and a.administered_at::date = i.infused_at::date
        ) as has_pre_infusion_score
    from staging.infusions as i
    inner join staging.patients as p using (patient_id)
    left join main_instrument as m using (patient_id)
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
