-- Question: How often does response come after the first infusion, by clinic?
-- Reads:    marts.series_outcomes

select
    clinic_id,
    count(*) filter (where is_responder) as responders,
    round(avg(is_rapid_response::int) filter (where is_responder), 3) as rapid_share_of_responders,
    round(avg(infusions_to_response) filter (where is_responder), 2) as mean_infusions_to_response
from marts.series_outcomes
where status = 'evaluable' and instrument = 'phq9' and series_kind = 'induction'
group by all
order by clinic_id
