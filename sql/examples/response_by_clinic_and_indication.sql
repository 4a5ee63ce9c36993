-- Question: Response and remission after a completed induction, by clinic and indication (main instrument).
-- Reads:    marts.series_outcomes
-- Note:     counts under 11 should not leave the analytics team (spec §7 suppresses them in reports).

select
    clinic_id,
    primary_indication,
    instrument,
    count(*) as evaluable_series,
    round(avg(is_responder::int), 3) as response_rate,
    round(avg(is_remitter::int), 3) as remission_rate
from marts.series_outcomes
where status = 'evaluable' and series_kind = 'induction' and is_completed_induction
    and instrument = case
        when primary_indication in ('crps', 'fibromyalgia', 'neuropathic_pain', 'migraine') then 'nrs_pain'
        when primary_indication = 'ptsd' then 'pcl5'
        when primary_indication = 'anxiety' then 'gad7'
        else 'phq9'
    end
group by all
having count(*) >= 11
order by clinic_id, primary_indication
