-- Question: Do higher induction doses respond better? PHQ-9 response and remission by mean dose band.
-- Reads:    marts.series_outcomes, intermediate.infusion_sessions, staging.infusions
-- Note:     completed inductions only (six infusions or more), so bands compare like with like.

with series_doses as (
    -- Mean dose over the infusions of each series.
    select
        n.patient_id,
        n.series_number,
        avg(i.dose_mg_per_kg) as mean_dose_mg_per_kg
    from intermediate.infusion_sessions as n
    inner join staging.infusions as i using (patient_id, infused_at)
    group by all
)

select
    case
        when mean_dose_mg_per_kg < 0.55 then '< 0.55 mg/kg'
        when mean_dose_mg_per_kg < 0.8 then '0.55-0.8 mg/kg'
        else '>= 0.8 mg/kg'
    end as dose_band,
    count(*) as evaluable_series,
    round(avg(o.is_responder::int), 3) as response_rate,
    round(avg(o.is_remitter::int), 3) as remission_rate
from marts.series_outcomes as o
inner join series_doses using (patient_id, series_number)
where o.instrument = 'phq9' and o.status = 'evaluable'
    and o.series_kind = 'induction' and o.is_completed_induction
group by all
order by dose_band
