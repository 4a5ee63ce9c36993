-- Question: How long does relief last after an induction, by indication?
-- Reads:    marts.series_outcomes
-- Note:     the median of observed relapses underestimates relief because censored responders
--           (still well at their last visit) are left out; the dashboard's Kaplan-Meier curves
--           use them. Both counts are shown so the reader can judge.

select
    primary_indication,
    count(*) as responders_with_follow_up,
    count(*) filter (where relief_status = 'relapsed') as relapsed,
    count(*) filter (where relief_status = 'censored') as still_relieved_at_last_visit,
    median(relief_days) filter (where relief_status = 'relapsed') as median_days_to_relapse
from marts.series_outcomes
where is_responder and series_kind = 'induction' and relief_days is not null
group by all
order by responders_with_follow_up desc
