-- Title:   Dissociation by infusion number within inductions: adverse-event rate and mean CADSS
-- Grain:   one row per (dimension, dimension_value, infusion_number)
-- Inputs:  marts.infusion_sessions
-- Rule:    shared spec §6; a CADSS counts for an infusion when taken on its day, after it started; numbers above 6 pooled as 7

with with_cadss as (
    select
        clinic_id,
        primary_indication,
        least(infusion_number, 7) as infusion_number,
        list_contains(adverse_events, 'dissociation') as has_dissociation,
        cadss_score
    from marts.infusion_sessions
    where series_kind = 'induction'
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
