-- Question: Which inductions in progress have improved less than 20% after four infusions (spec §10.4)?
-- Reads:    marts.early_non_improvement_worklist, marts.response_rates
-- Privacy:  a clinical worklist with patient identifiers: for clinicians only.
-- The early check's track record in this network (how often a flag ended in non-response) comes with each row.

select
    w.clinic_id,
    w.patient_id,
    w.instrument,
    w.infusion_count as infusions_so_far,
    w.baseline_score,
    w.end_score as latest_score_in_window,
    round(w.end_pct_change, 1) as pct_change,
    round(100 * r.early_ppv_rate, 1) as flags_ending_in_non_response_pct
from marts.early_non_improvement_worklist as w
left join marts.response_rates as r
    on w.instrument = r.instrument and r.dimension = 'network' and r.series_kind = 'induction'
order by w.clinic_id asc, w.series_end_at desc
