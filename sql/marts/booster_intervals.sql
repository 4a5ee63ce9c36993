-- Title:   Days between a series and the booster that follows it: median and interquartile range
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.treatment_series
-- Rule:    shared spec §3; only intervals ending in a booster (a gap over reinduction_gap_days starts an induction)

with series as (
    select * from marts.treatment_series
),

followed_by_booster as (
    -- The series whose next one is a booster: a join on the next series' number finds them without sorting
    -- every patient's series as a window over them would.
    select series.*
    from series
    inner join series as next_series
        on series.patient_id = next_series.patient_id
            and series.series_number + 1 = next_series.series_number
    where next_series.series_kind = 'booster'
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
