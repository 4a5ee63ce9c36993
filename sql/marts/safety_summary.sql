-- Title:   Infusion safety: hypertensive and desaturation events, blood pressure rise, adverse events per 100 infusions
-- Grain:   one row per (dimension, dimension_value)
-- Inputs:  marts.infusion_sessions
-- Rule:    shared spec §6; hypertensive when systolic >= sbp_alert or diastolic >= dbp_alert, desaturation when SpO2 < spo2_alert

with infusions as (
    select
        clinic_id,
        primary_indication,
        is_hypertensive,
        is_desaturation,
        systolic_rise,
        adverse_events
    from marts.infusion_sessions
),

cohorts as (
    select
        * exclude (clinic_id, primary_indication),
        unnest(cohorts_of(clinic_id, primary_indication), recursive := true)
    from infusions
),

final as (
    select
        dimension,
        dimension_value,
        count(*) as infusion_count,
        count(*) filter (where is_hypertensive) as hypertensive_count,
        count(*) filter (where is_hypertensive) / count(*) as hypertensive_rate,
        count(*) filter (where is_desaturation) as desaturation_count,
        count(*) filter (where is_desaturation) / count(*) as desaturation_rate,
        avg(systolic_rise) as mean_systolic_rise,
        100.0 * count(*) filter (where list_contains(adverse_events, 'nausea')) / count(*) as nausea_per_100,
        100.0 * count(*) filter (where list_contains(adverse_events, 'vomiting')) / count(*) as vomiting_per_100,
        100.0
        * count(*) filter (where list_contains(adverse_events, 'dissociation'))
        / count(*) as dissociation_per_100,
        100.0 * count(*) filter (where list_contains(adverse_events, 'dysphoria')) / count(*) as dysphoria_per_100,
        100.0 * count(*) filter (where list_contains(adverse_events, 'headache')) / count(*) as headache_per_100,
        100.0 * count(*) filter (where list_contains(adverse_events, 'dizziness')) / count(*) as dizziness_per_100,
        100.0
        * count(*) filter (where list_contains(adverse_events, 'hypertension'))
        / count(*) as hypertension_per_100,
        -- Codes outside the contract's list count as other.
        100.0 * count(*) filter (where len(list_filter(
            adverse_events, lambda code: code not in (
                'nausea', 'vomiting', 'dissociation', 'dysphoria', 'headache', 'dizziness', 'hypertension'
            )
        )) > 0) / count(*) as other_per_100
    from cohorts
    group by all
)

select * from final
order by dimension, dimension_value
