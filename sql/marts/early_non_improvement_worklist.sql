-- Title:   Inductions still in progress whose early check flags too little improvement, for clinicians
-- Grain:   one row per (series_id, instrument)
-- Inputs:  marts.series_outcomes, marts.treatment_series
-- Rule:    shared spec §10.4; in progress = the patient's latest series, an induction, its last infusion at most series_gap_days before the as-of date (another infusion would extend it). Patient-level: never part of directors' reports

with outcomes as (
    select * from marts.series_outcomes
),

series as (
    select * from marts.treatment_series
),

in_progress as (
    select *
    from series
    where series_kind = 'induction'
        and getvariable('as_of')::date - series_end_at::date <= getvariable('series_gap_days')
    qualify series_number = max(series_number) over (partition by patient_id)
),

final as (
    select
        in_progress.clinic_id,
        in_progress.patient_id,
        in_progress.series_id,
        outcomes.instrument,
        in_progress.series_start_at,
        in_progress.series_end_at,
        in_progress.infusion_count,
        outcomes.baseline_score,
        outcomes.end_score,
        outcomes.end_pct_change,
        in_progress.provider_id
    from in_progress
    inner join outcomes
        on in_progress.patient_id = outcomes.patient_id
            and in_progress.series_number = outcomes.series_number
    where outcomes.is_early_non_improver
)

select * from final
order by clinic_id asc, series_end_at desc, patient_id asc, instrument asc
