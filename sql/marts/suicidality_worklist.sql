-- Title:   Patients whose latest PHQ-9 flags thoughts of self-harm (item 9 of 1 or more), for clinicians
-- Grain:   one row per patient_id
-- Inputs:  staging.assessments, staging.patients
-- Rule:    shared spec §2; the latest PHQ-9 with items decides. Patient-level: never part of directors' reports
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with phq9_with_items as (
    select * from staging.assessments
    where instrument = 'phq9' and phq9_item9 is not null
),

latest as (
    select * from phq9_with_items
    qualify administered_at = max(administered_at) over (partition by patient_id)
),

final as (
    select
        p.clinic_id,
        latest.patient_id,
        latest.administered_at as latest_phq9_at,
        latest.phq9_item9,
        latest.score as phq9_score
    from latest
    inner join staging.patients as p using (patient_id)
    where latest.has_suicidality_flag
)

select * from final
order by clinic_id asc, phq9_item9 desc, latest_phq9_at desc
