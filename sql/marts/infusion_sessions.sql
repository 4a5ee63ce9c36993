-- Title:   Every accepted infusion session with its place in its series and its safety and measurement facts
-- Grain:   one row per (patient_id, infused_at)
-- Inputs:  staging.infusions, staging.assessments, intermediate.infusion_sessions, marts.treatment_series
-- Rule:    shared spec §6; the safety and adherence marts count these rows, so each fact is judged once per infusion
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with infusions as (
    select * from staging.infusions
),

numbered as (
    select * from intermediate.infusion_sessions
),

series as (
    select * from marts.treatment_series
),

sessions as materialized (
    -- Each infusion's place in its series, with the series' facts, joined on its own first: left to order
    -- the joins of final itself, DuckDB paired every infusion with every series of its patient (13 million
    -- pairs at a million patients) before narrowing them to the right series, a fifth of this model's time.
    select
        n.patient_id,
        n.infused_at,
        n.series_number,
        n.infusion_number,
        s.clinic_id,
        s.primary_indication,
        s.series_kind
    from numbered as n
    inner join series as s on n.patient_id = s.patient_id and n.series_number = s.series_number
),

scores_per_instrument as (
    select
        patient_id,
        instrument,
        count(*) as score_count
    from staging.assessments
    where instrument <> 'cadss'  -- a safety measure taken after infusions, never the main instrument
    group by all
),

main_instrument as (
    -- The instrument the patient was scored on most. A tie (as many GAD-7 as PHQ-9 scores) goes to the
    -- first code alphabetically, so that the answer does not depend on the order rows were stored in.
    select
        patient_id,
        first(instrument order by score_count desc, instrument asc) as instrument
    from scores_per_instrument
    group by patient_id
),

main_scored_infusions as (
    -- An infusion has a pre-infusion score when the main instrument was scored on its day, at or before it.
    -- Joined to the infusions at once: grouping every scored day first (ten million at a million patients)
    -- and joining the days to the infusions after took a fifth longer.
    select distinct
        i.patient_id,
        i.infused_at
    from infusions as i
    inner join main_instrument as m on i.patient_id = m.patient_id
    inner join staging.assessments as a
        on i.patient_id = a.patient_id
            and m.instrument = a.instrument
            and a.administered_at::date = i.infused_at::date
    where a.administered_at <= i.infused_at
),

cadss_after_infusion as (
    -- A CADSS counts for an infusion when taken on its day, after it started; the highest one.
    select
        i.patient_id,
        i.infused_at,
        max(a.score) as cadss_score
    from infusions as i
    inner join staging.assessments as a
        on i.patient_id = a.patient_id
            and a.instrument = 'cadss'
            and a.administered_at::date = i.infused_at::date
    where a.administered_at >= i.infused_at
    group by all
),

final as (
    select
        i.patient_id,
        n.clinic_id,
        n.primary_indication,
        i.infused_at,
        n.series_number,
        n.series_kind,
        n.infusion_number,
        coalesce(i.bp_systolic_max >= getvariable('sbp_alert') or i.bp_diastolic_max >= getvariable('dbp_alert'), false)
            as is_hypertensive,
        coalesce(i.spo2_min < getvariable('spo2_alert'), false) as is_desaturation,
        i.bp_systolic_max - i.bp_systolic_pre as systolic_rise,
        -- Spec §10.7: a safety rate counts only the infusions that recorded its inputs.
        i.bp_systolic_max is not null or i.bp_diastolic_max is not null as is_bp_recorded,
        i.spo2_min is not null as is_spo2_recorded,
        i.adverse_events,
        i.is_adverse_events_recorded,
        f.patient_id is not null as has_pre_infusion_score,
        c.cadss_score
    from infusions as i
    inner join sessions as n on i.patient_id = n.patient_id and i.infused_at = n.infused_at
    left join main_scored_infusions as f on i.patient_id = f.patient_id and i.infused_at = f.infused_at
    left join cadss_after_infusion as c on i.patient_id = c.patient_id and i.infused_at = c.infused_at
)

select * from final
