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

counted_per_clinic_and_indication as (
    -- Counted once per clinic, indication and infusion number, then added up per cohort (safety_summary says why).
    select
        clinic_id,
        primary_indication,
        infusion_number,
        count(*) as infusion_count,
        count(*) filter (where has_dissociation) as dissociation_count,
        count(cadss_score) as cadss_count,
        sum(cadss_score) as cadss_sum
    from with_cadss
    group by all
),

cohorts as (
    select
        * exclude (clinic_id, primary_indication),
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from counted_per_clinic_and_indication
),

final as (
    select
        dimension,
        dimension_value,
        infusion_number,
        sum(infusion_count)::bigint as infusion_count,
        sum(dissociation_count)::bigint as dissociation_count,
        100.0 * sum(dissociation_count) / sum(infusion_count) as dissociation_per_100,
        sum(cadss_count)::bigint as cadss_count,
        sum(cadss_sum) / nullif(sum(cadss_count), 0) as mean_cadss
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value, infusion_number
