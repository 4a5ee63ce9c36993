-- Title:   Days between a series and the booster that follows it: median and interquartile range
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.treatment_series
-- Rule:    shared spec §3; only intervals ending in a booster (a gap over reinduction_gap_days starts an induction)

with series as (
    select
        *,
        lead(series_kind) over (partition by patient_id order by series_number) as next_series_kind
    from marts.treatment_series
),

followed_by_booster as (
    select * from series
    where next_series_kind = 'booster'
),

cohorts as (
    select
        booster_interval_days,
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from followed_by_booster
),

final as (
    select
        dimension,
        dimension_value,
        count(*) as interval_count,
        quantile_cont(booster_interval_days, 0.5) as median_days,
        quantile_cont(booster_interval_days, 0.25) as p25_days,
        quantile_cont(booster_interval_days, 0.75) as p75_days
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value
