-- Title:   Infusion safety: hypertensive and desaturation events, blood pressure rise, adverse events per 100 infusions
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.infusion_sessions
-- Rule:    shared spec §6 and §10.7: each rate is over the infusions that recorded its inputs (null when none did); hypertensive when systolic >= sbp_alert or diastolic >= dbp_alert, desaturation when SpO2 < spo2_alert

with infusions as (
    select
        clinic_id,
        primary_indication,
        is_hypertensive,
        is_desaturation,
        systolic_rise,
        is_bp_recorded,
        is_spo2_recorded,
        is_adverse_events_recorded,
        -- Adverse events are counted over the infusions that recorded the field.
        case when is_adverse_events_recorded then adverse_events end as adverse_events
    from marts.infusion_sessions
),

counted_per_clinic_and_indication as (
    -- Every measure is a count or a sum, so each infusion is counted once, in its clinic and indication, and
    -- the cohorts add those up: unnesting each infusion into its three cohorts first tripled the rows the
    -- adverse-event lists were searched in (a million patients: five million infusions, 160 such cells).
    select
        clinic_id,
        primary_indication,
        count(*) as infusion_count,
        count(*) filter (where is_bp_recorded) as bp_recorded_count,
        count(*) filter (where is_spo2_recorded) as spo2_recorded_count,
        count(*) filter (where is_adverse_events_recorded) as adverse_events_recorded_count,
        count(*) filter (where is_hypertensive) as hypertensive_count,
        count(*) filter (where is_desaturation) as desaturation_count,
        sum(systolic_rise) as systolic_rise_sum,
        count(systolic_rise) as systolic_rise_count,
        count(*) filter (where list_contains(adverse_events, 'nausea')) as nausea_count,
        count(*) filter (where list_contains(adverse_events, 'vomiting')) as vomiting_count,
        count(*) filter (where list_contains(adverse_events, 'dissociation')) as dissociation_count,
        count(*) filter (where list_contains(adverse_events, 'dysphoria')) as dysphoria_count,
        count(*) filter (where list_contains(adverse_events, 'headache')) as headache_count,
        count(*) filter (where list_contains(adverse_events, 'dizziness')) as dizziness_count,
        count(*) filter (where list_contains(adverse_events, 'hypertension')) as hypertension_count,
        -- Codes outside the contract's list count as other.
        count(*) filter (where len(list_filter(
            adverse_events, lambda code: code not in (
                'nausea', 'vomiting', 'dissociation', 'dysphoria', 'headache', 'dizziness', 'hypertension'
            )
        )) > 0) as other_count
    from infusions
    group by all
),

cohorts as (
    select
        * exclude (clinic_id, primary_indication),
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from counted_per_clinic_and_indication
),

counted as (
    select
        dimension,
        dimension_value,
        sum(infusion_count)::bigint as infusion_count,
        sum(bp_recorded_count)::bigint as bp_recorded_count,
        sum(spo2_recorded_count)::bigint as spo2_recorded_count,
        sum(adverse_events_recorded_count)::bigint as adverse_events_recorded_count,
        sum(hypertensive_count)::bigint as hypertensive_count,
        sum(desaturation_count)::bigint as desaturation_count,
        sum(systolic_rise_sum) / nullif(sum(systolic_rise_count), 0) as mean_systolic_rise,
        sum(nausea_count)::bigint as nausea_count,
        sum(vomiting_count)::bigint as vomiting_count,
        sum(dissociation_count)::bigint as dissociation_count,
        sum(dysphoria_count)::bigint as dysphoria_count,
        sum(headache_count)::bigint as headache_count,
        sum(dizziness_count)::bigint as dizziness_count,
        sum(hypertension_count)::bigint as hypertension_count,
        sum(other_count)::bigint as other_count
    from cohorts
    group by all
),

final as (
    select
        dimension,
        dimension_value,
        infusion_count,
        bp_recorded_count,
        spo2_recorded_count,
        adverse_events_recorded_count,
        hypertensive_count,
        hypertensive_count / nullif(bp_recorded_count, 0) as hypertensive_rate,
        desaturation_count,
        desaturation_count / nullif(spo2_recorded_count, 0) as desaturation_rate,
        mean_systolic_rise,
        nausea_count,
        vomiting_count,
        dissociation_count,
        dysphoria_count,
        headache_count,
        dizziness_count,
        hypertension_count,
        other_count,
        100.0 * nausea_count / nullif(adverse_events_recorded_count, 0) as nausea_per_100,
        100.0 * vomiting_count / nullif(adverse_events_recorded_count, 0) as vomiting_per_100,
        100.0 * dissociation_count / nullif(adverse_events_recorded_count, 0) as dissociation_per_100,
        100.0 * dysphoria_count / nullif(adverse_events_recorded_count, 0) as dysphoria_per_100,
        100.0 * headache_count / nullif(adverse_events_recorded_count, 0) as headache_per_100,
        100.0 * dizziness_count / nullif(adverse_events_recorded_count, 0) as dizziness_per_100,
        100.0 * hypertension_count / nullif(adverse_events_recorded_count, 0) as hypertension_per_100,
        100.0 * other_count / nullif(adverse_events_recorded_count, 0) as other_per_100
    from counted
)

select * from final
order by dimension, dimension_value
