-- Question: Which clinics score patients before every infusion? Clinics ranked by measurement adherence.
-- Reads:    marts.measurement_adherence
-- Rule:     an infusion is measured when the patient's main instrument (the one scored most often)
--           has a score on the infusion's day, at or before the infusion.

select
    dimension_value as clinic_id,
    infusion_count as infusions,
    round(adherence_rate, 3) as adherence,
    rank() over (order by adherence_rate desc) as adherence_rank
from marts.measurement_adherence
where dimension = 'clinic'
order by adherence_rank
