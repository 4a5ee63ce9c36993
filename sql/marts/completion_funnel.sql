-- Title:   How many inductions reach each infusion up to the induction target
-- Grain:   one row per (dimension, dimension_value, infusion_number)
-- Inputs:  marts.treatment_series
-- Rule:    shared spec §3; an induction of k infusions reaches infusion numbers 1..k

with inductions as (
    select * from marts.treatment_series
    where series_kind = 'induction'
),

cohorts as (
    select
        infusion_count,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from inductions
),

reached as (
    select unnest(range(1, getvariable('induction_target_infusions') + 1))::integer as infusion_number
),

final as (
    select
        cohorts.dimension,
        cohorts.dimension_value,
        reached.infusion_number,
        count(*) filter (where cohorts.infusion_count >= reached.infusion_number) as inductions_reaching,
        count(*) as induction_count,
        count(*) filter (where cohorts.infusion_count >= reached.infusion_number) / count(*) as share_reaching
    from cohorts
    cross join reached
    group by all
)

select * from final
order by dimension, dimension_value, infusion_number
