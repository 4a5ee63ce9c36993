-- Title:   Every follow-up score judged against its series baseline, for trajectories
-- Grain:   one row per (series_id, instrument, administered_at)
-- Inputs:  intermediate.assessment_outcomes, marts.treatment_series
-- Rule:    shared spec §4; a follow-up of a series lies after its start and at or before the next series' start
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows
-- Materialized: view; every follow-up with its series' clinic and kind, without storing the follow-ups twice

with follow_ups as (
    select * from intermediate.assessment_outcomes
),

series as (
    select * from marts.treatment_series
),

final as (
    select
        follow_ups.patient_id,
        series.clinic_id,
        series.series_id,
        follow_ups.series_number,
        series.series_kind,
        follow_ups.instrument,
        follow_ups.administered_at,
        follow_ups.score,
        follow_ups.baseline_score,
        follow_ups.pct_change,
        follow_ups.infusions_received,
        follow_ups.meets_response,
        follow_ups.meets_remission,
        follow_ups.is_in_response_window,
        follow_ups.is_after_series_end,
        series.primary_indication
    from follow_ups
    inner join series
        on follow_ups.patient_id = series.patient_id
            and follow_ups.series_number = series.series_number
)

select * from final
