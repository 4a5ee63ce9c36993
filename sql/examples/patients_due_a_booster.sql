-- Question: Which responders are due a booster, by their clinic's typical relief duration?
-- Reads:    marts.series_outcomes, marts.treatment_series
-- Rule:     due when the days since the last infusion reach the clinic's median days to relapse
--           (PHQ-9 or pain NRS responders) and no later series has started. "Today" is the latest
--           infusion in the warehouse, so the query also works on historical extracts.
-- Privacy:  lists patient identifiers: for clinicians, not for published reports.

with today as (
    select max(series_end_at)::date as today from marts.treatment_series
),

clinic_relief as (
    select
        clinic_id,
        median(relief_days) as typical_relief_days
    from marts.series_outcomes
    where relief_status = 'relapsed' and instrument in ('phq9', 'nrs_pain')
    group by all
),

last_series as (
    select * from marts.treatment_series
    qualify series_number = max(series_number) over (partition by patient_id)
),

responding_last_series as (
    select distinct
        o.patient_id,
        o.series_id
    from marts.series_outcomes as o
    where o.is_responder and o.instrument in ('phq9', 'nrs_pain')
)

select
    s.clinic_id,
    s.patient_id,
    s.series_end_at::date as last_infusion_on,
    today.today - s.series_end_at::date as days_since_last_infusion,
    c.typical_relief_days
from last_series as s
inner join responding_last_series using (series_id)
inner join clinic_relief as c using (clinic_id)
cross join today
where today.today - s.series_end_at::date >= c.typical_relief_days
    and today.today - s.series_end_at::date <= 180  -- beyond six months it is a new induction
order by s.clinic_id asc, days_since_last_infusion desc
