-- Question: Response by dose band for CRPS patients over 60 (pain NRS, >= 30% reduction).
-- Reads:    marts.series_outcomes, staging.patients, intermediate.infusion_sessions, staging.infusions
-- Note:     age at the series start year; dose is the series' mean dose.

with series_doses as (
    select
        n.patient_id,
        n.series_number,
        avg(i.dose_mg_per_kg) as mean_dose_mg_per_kg
    from intermediate.infusion_sessions as n
    inner join staging.infusions as i using (patient_id, infused_at)
    group by all
)

select
    case when d.mean_dose_mg_per_kg < 0.7 then '< 0.7 mg/kg' else '>= 0.7 mg/kg' end as dose_band,
    count(*) as evaluable_series,
    round(avg(o.is_responder::int), 3) as response_rate,
    round(median(o.end_pct_change), 1) as median_pct_change
from marts.series_outcomes as o
inner join staging.patients as p using (patient_id)
inner join series_doses as d using (patient_id, series_number)
where o.instrument = 'nrs_pain' and o.status = 'evaluable'
    and p.primary_indication = 'crps'
    and year(o.series_start_at) - p.birth_year > 60
group by all
order by dose_band
