-- Question: How many new inductions does each clinic start each month?
-- Reads:    marts.treatment_series

select
    date_trunc('month', series_start_at)::date as month,
    clinic_id,
    count(*) as inductions,
    count(*) filter (where is_completed_induction) as completed
from marts.treatment_series
where series_kind = 'induction'
group by all
order by month, clinic_id
