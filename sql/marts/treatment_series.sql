-- Title:   Treatment series: runs of infusions with no gap over series_gap_days
-- Grain:   one row per series_id; series_id = patient_id#series_number
-- Inputs:  intermediate.treatment_series, intermediate.infusion_sessions, staging.infusions, staging.patients
-- Rule:    shared spec §3 and §10.6; series_id is patient_id, '#', series_number: readable and stable across refreshes
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with series as (
    select * from intermediate.treatment_series
),

patients as (
    select * from staging.patients
),

infusions as (
    select
        numbered.patient_id,
        numbered.series_number,
        numbered.infused_at,
        staged.provider_id,
        staged.dose_mg_per_kg
    from intermediate.infusion_sessions as numbered
    inner join staging.infusions as staged
        on numbered.patient_id = staged.patient_id and numbered.infused_at = staged.infused_at
),

providers as (
    -- Spec §10.6: the provider of most of the series' infusions; a tie goes to the one who gave the earliest.
    select
        patient_id,
        series_number,
        provider_id,
        count(*) as infusion_count,
        min(infused_at) as first_infused_at
    from infusions
    where provider_id is not null
    group by all
),

series_provider as (
    select
        patient_id,
        series_number,
        arg_min(provider_id, {'fewer': -infusion_count, 'earlier': first_infused_at}) as provider_id
    from providers
    group by all
),

series_dose as (
    -- The mean over the infusions that recorded a dose; none recorded leaves it null (band 'unknown'). Summed
    -- as decimals, exactly: added as binary floating point, 0.5, 0.57, 0.69, 0.84 and 1.15 mg/kg come to a mean
    -- of 0.7499999999999999 and the band below 0.75, and the last digit of other means changed from run to run
    -- with the order the parallel sum met them in.
    select
        patient_id,
        series_number,
        avg(dose_mg_per_kg::decimal(18, 6)) as mean_dose_mg_per_kg
    from infusions
    group by all
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
        patients.primary_indication,
        series_provider.provider_id,
        series_dose.mean_dose_mg_per_kg,
        case
            when series_dose.mean_dose_mg_per_kg < 0.5 then '<0.5'
            when series_dose.mean_dose_mg_per_kg < 0.75 then '0.5-<0.75'
            when series_dose.mean_dose_mg_per_kg < 1.0 then '0.75-<1.0'
            when series_dose.mean_dose_mg_per_kg >= 1.0 then '>=1.0'
            else 'unknown'
        end as dose_band
    from series
    inner join patients on series.patient_id = patients.patient_id
    left join series_provider
        on series.patient_id = series_provider.patient_id and series.series_number = series_provider.series_number
    left join series_dose
        on series.patient_id = series_dose.patient_id and series.series_number = series_dose.series_number
)

select * from final
order by patient_id, series_number
