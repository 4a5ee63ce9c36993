-- Title:   Dissociation by infusion number within inductions: adverse-event rate and mean CADSS
-- Grain:   one row per (dimension, dimension_value, infusion_number)
-- Inputs:  intermediate.infusions_numbered, marts.treatment_series, staging.infusions, staging.assessments
-- Rule:    shared spec §6; a CADSS counts for an infusion when taken on its day, after it started; numbers above 6 pooled as 7

with induction_infusions as (
    select
        n.patient_id,
        n.infused_at,
        least(n.infusion_number, 7) as infusion_number,
        s.clinic_id,
        s.primary_indication,
        list_contains(i.adverse_events, 'dissociation') as has_dissociation
    from intermediate.infusions_numbered as n
    inner join marts.treatment_series as s using (patient_id, series_number)
    inner join staging.infusions as i using (patient_id, infused_at)
    where s.series_kind = 'induction'
),

with_cadss as (
    select
        f.*,
        (
            select max(a.score) from staging.assessments as a
            where a.patient_id = f.patient_id and a.instrument = 'cadss'
              and a.administered_at >= f.infused_at and a.administered_at::date = f.infused_at::date
        ) as cadss_score
    from induction_infusions as f
),

cohorts as (
    select
        infusion_number,
        has_dissociation,
        cadss_score,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from with_cadss
),

final as (
    select
        dimension,
        dimension_value,
        infusion_number,
        count(*) as infusion_count,
        count(*) filter (where has_dissociation) as dissociation_count,
        100.0 * count(*) filter (where has_dissociation) / count(*) as dissociation_per_100,
        count(cadss_score) as cadss_count,
        avg(cadss_score) as mean_cadss
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value, infusion_number
