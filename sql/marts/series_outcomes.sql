-- Title:   Outcome of each treatment series on each instrument the patient was scored on
-- Grain:   one row per (series_id, instrument)
-- Inputs:  intermediate.series_outcomes, marts.treatment_series
-- Rule:    shared spec §4 and §10.2-10.4; is_responder and is_remitter judge the end score, relief runs from the last infusion
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with outcomes as (
    select * from intermediate.series_outcomes
),

series as (
    select * from marts.treatment_series
),

final as (
    select
        outcomes.patient_id,
        series.clinic_id,
        series.series_id,
        outcomes.series_number,
        outcomes.series_kind,
        outcomes.instrument,
        outcomes.status,
        outcomes.baseline_at,
        outcomes.baseline_score,
        outcomes.is_remission_eligible,
        outcomes.end_score,
        outcomes.end_pct_change,
        outcomes.best_score,
        outcomes.best_pct_change,
        outcomes.is_responder,
        outcomes.is_remitter,
        outcomes.first_response_at,
        outcomes.infusions_to_response,
        outcomes.is_rapid_response,
        outcomes.end_change,
        outcomes.is_reliable_improvement,
        outcomes.is_reliable_deterioration,
        outcomes.is_reliable_recovery,
        outcomes.is_early_non_improver,
        outcomes.relief_days,
        outcomes.relief_status,
        outcomes.booster_interval_days,
        series.primary_indication,
        series.series_start_at,
        series.infusion_count,
        series.is_completed_induction,
        series.provider_id,
        series.dose_band
    from outcomes
    inner join series
        on outcomes.patient_id = series.patient_id
            and outcomes.series_number = series.series_number
)

select * from final
order by patient_id, series_number, instrument
