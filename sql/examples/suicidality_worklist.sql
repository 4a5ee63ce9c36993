-- Question: Whose most recent PHQ-9 flags thoughts of self-harm (item 9 >= 1)?
-- Reads:    staging.assessments, staging.patients
-- Privacy:  a clinical worklist with patient identifiers: for clinicians only.

select
    p.clinic_id,
    a.patient_id,
    a.administered_at as latest_phq9_at,
    a.phq9_item9,
    a.score as phq9_total
from staging.assessments as a
inner join staging.patients as p using (patient_id)
where a.instrument = 'phq9' and a.phq9_item9 is not null
qualify a.administered_at = max(a.administered_at) over (partition by a.patient_id)
    and a.phq9_item9 >= 1
order by a.phq9_item9 desc, a.administered_at desc
