-- Title:   How many inductions reach each infusion up to the induction target
-- Grain:   one row per (dimension, dimension_value, infusion_number)
-- Inputs:  marts.treatment_series
-- Rule:    shared spec §3; an induction of k infusions reaches infusion numbers 1..k

with inductions as (
    select * from marts.treatment_series
    where series_kind = 'induction'
),

inductions_per_size as (
    -- Counted once per clinic, indication and number of infusions, then added up per cohort (safety_summary
    -- says why).
    select
        clinic_id,
        primary_indication,
        infusion_count,
        count(*) as induction_count
    from inductions
    group by all
),

cohorts as (
    select
        infusion_count,
        induction_count,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from inductions_per_size
),

reached as (
    select unnest(range(1, getvariable('induction_target_infusions') + 1))::integer as infusion_number
),

counted as (
    select
        cohorts.dimension,
        cohorts.dimension_value,
        reached.infusion_number,
        sum(
            case when cohorts.infusion_count >= reached.infusion_number then cohorts.induction_count else 0 end
        )::bigint as inductions_reaching,
        sum(cohorts.induction_count)::bigint as induction_count
    from cohorts
    cross join reached
    group by all
),

final as (
    select
        dimension,
        dimension_value,
        infusion_number,
        inductions_reaching,
        induction_count,
        inductions_reaching / induction_count as share_reaching
    from counted
)

select * from final
order by dimension, dimension_value, infusion_number
