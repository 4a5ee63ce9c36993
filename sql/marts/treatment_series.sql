-- Title:   Treatment series: runs of infusions with no gap over series_gap_days
-- Grain:   one row per series_id; series_id = patient_id#series_number
-- Inputs:  intermediate.treatment_series, staging.patients
-- Rule:    shared spec §3; series_id is patient_id, '#', series_number: readable and stable across refreshes
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with series as (
    select * from intermediate.treatment_series
),

patients as (
    select * from staging.patients
),

final as (
    select
        series.patient_id,
        patients.clinic_id,
        series.patient_id || '#' || series.series_number as series_id,
        series.series_number,
        series.series_kind,
        series.series_start_at,
        series.series_end_at,
        series.infusion_count,
        series.is_completed_induction,
        series.booster_interval_days,
        patients.primary_indication
    from series
    inner join patients on series.patient_id = patients.patient_id
)

select * from final
order by patient_id, series_number
