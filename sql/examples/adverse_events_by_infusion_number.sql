-- Question: Do side effects fade over an induction? Adverse events per 100 infusions by infusion number.
-- Reads:    staging.infusions, intermediate.infusion_sessions, marts.treatment_series
-- Note:     inductions only; infusion numbers above 6 are pooled.

with induction_infusions as (
    select
        least(n.infusion_number, 7) as infusion_number,
        i.adverse_events
    from intermediate.infusion_sessions as n
    inner join staging.infusions as i using (patient_id, infused_at)
    inner join marts.treatment_series as s using (patient_id, series_number)
    where s.series_kind = 'induction'
)

select
    case when infusion_number = 7 then '7+' else infusion_number::varchar end as infusion_number,
    count(*) as infusions,
    round(100.0 * avg(list_contains(adverse_events, 'nausea')::int), 1) as nausea_per_100,
    round(100.0 * avg(list_contains(adverse_events, 'dissociation')::int), 1) as dissociation_per_100,
    round(100.0 * avg(list_contains(adverse_events, 'headache')::int), 1) as headache_per_100,
    round(100.0 * avg(list_contains(adverse_events, 'hypertension')::int), 1) as hypertension_per_100
from induction_infusions
group by all
order by min(infusion_number)
