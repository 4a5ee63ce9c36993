-- Question: How many inductions reach the 1st, 2nd ... 6th infusion?
-- Reads:    marts.treatment_series

select
    reached.infusion_number,
    count(*) filter (where s.infusion_count >= reached.infusion_number) as inductions_reaching,
    round(count(*) filter (where s.infusion_count >= reached.infusion_number) / count(*), 3) as share_of_inductions
from marts.treatment_series as s
cross join range(1, 7) as reached (infusion_number)
where s.series_kind = 'induction'
group by all
order by reached.infusion_number
