-- Question: Which clinics score patients before every infusion? Clinics ranked by measurement adherence.
-- Reads:    staging.infusions, staging.assessments, staging.patients
-- Rule:     an infusion is measured when the patient's main instrument (the one scored most often)
--           has a score on the infusion's day, at or before the infusion.

with main_instrument as (
    select patient_id, arg_max(instrument, scores) as instrument
    from (select patient_id, instrument, count(*) as scores from staging.assessments group by all)
    group by patient_id
),

measured as (
    select
        i.patient_id,
        i.infused_at,
        exists (
            select 1 from staging.assessments as a
            where a.patient_id = i.patient_id and a.instrument = m.instrument
              and a.administered_at <= i.infused_at and a.administered_at::date = i.infused_at::date
        ) as has_pre_infusion_score
    from staging.infusions as i
    join main_instrument as m using (patient_id)
)

select
    p.clinic_id,
    count(*) as infusions,
    round(avg(has_pre_infusion_score::int), 3) as adherence,
    rank() over (order by avg(has_pre_infusion_score::int) desc) as adherence_rank
from measured
join staging.patients as p using (patient_id)
group by all
order by adherence_rank
