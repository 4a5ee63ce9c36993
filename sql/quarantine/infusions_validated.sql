-- Title:   Every row of the infusion files, typed, with the first reason it cannot be used
-- Grain:   one row per (source_file, row_number); every data row read
-- Inputs:  raw.infusions, seeds.value_ranges, quarantine.patients_validated
-- Rule:    shared spec §8: the first failing check in the spec's order; duplicates judged among rows passing every other check
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with raw_rows as (
    select * from raw.infusions
),

accepted_patients as (
    -- The patients staging.patients will hold: validated, with no reason, first copy only; with the time zone
    -- of their clinic (spec §10.1) and the run's as-of time there, worked out once per patient.
    select
        patient_id,
        birth_year,
        clinic_timezone,
        as_of_in(clinic_timezone) as clinic_as_of
    from quarantine.patients_validated
    where reason is null and not is_exact_duplicate
),

parsed as (
    -- Each value parsed once; the checks below read the parsed values.
    select
        raw_rows.*,
        blank_to_null(raw_rows.patient_id) as clean_patient_id,
        accepted_patients.patient_id is not null as is_known_patient,
        accepted_patients.birth_year,
        accepted_patients.clinic_as_of,
        -- A row of an unknown patient (rejected below) is read in the default zone for its detail.
        iso_timestamp(
            raw_rows.infused_at, coalesce(accepted_patients.clinic_timezone, getvariable('clinic_timezone'))
        ) as parsed_infused_at,
        strict_number(raw_rows.dose_mg_per_kg) as parsed_dose_mg_per_kg,
        strict_number(raw_rows.duration_min) as parsed_duration_min,
        strict_number(raw_rows.bp_systolic_pre) as parsed_bp_systolic_pre,
        strict_number(raw_rows.bp_diastolic_pre) as parsed_bp_diastolic_pre,
        strict_number(raw_rows.bp_systolic_max) as parsed_bp_systolic_max,
        strict_number(raw_rows.bp_diastolic_max) as parsed_bp_diastolic_max,
        strict_number(raw_rows.heart_rate_max) as parsed_heart_rate_max,
        strict_number(raw_rows.spo2_min) as parsed_spo2_min
    from raw_rows
    left join accepted_patients
        on blank_to_null(raw_rows.patient_id) = accepted_patients.patient_id
),

typed as (
    select
        _source_file as source_file,
        _row_number as row_number,
        clean_patient_id as patient_id,
        parsed_infused_at as infused_at,
        parsed_dose_mg_per_kg as dose_mg_per_kg,
        parsed_duration_min as duration_min,
        blank_to_null(provider_id) as provider_id,
        parsed_bp_systolic_pre as bp_systolic_pre,
        parsed_bp_diastolic_pre as bp_diastolic_pre,
        parsed_bp_systolic_max as bp_systolic_max,
        parsed_bp_diastolic_max as bp_diastolic_max,
        parsed_heart_rate_max as heart_rate_max,
        parsed_spo2_min as spo2_min,
        -- Codes are kept as sent (lower-cased); the safety mart counts unlisted ones as 'other'.
        list_filter(
            list_transform(string_split(lower(coalesce(adverse_events, '')), ';'), lambda code: trim(code)),
            lambda code: code <> ''
        ) as adverse_events,
        -- Sent at all (an empty field says none occurred; a file or mapping without the column sends nothing).
        adverse_events is not null as is_adverse_events_recorded,
        blank_to_null(rescue_medication) as rescue_medication,
        coalesce(
            case when _parse_error is not null then {'reason': 'malformed_row', 'detail': _parse_error} end,
            missing_failure('patient_id', parsed.patient_id),
            missing_failure('infused_at', infused_at),
            identifier_failure('patient_id', parsed.patient_id),
            identifier_failure('provider_id', provider_id),
            timestamp_failure('infused_at', infused_at, parsed_infused_at),
            number_failure('dose_mg_per_kg', dose_mg_per_kg, parsed_dose_mg_per_kg),
            number_failure('duration_min', duration_min, parsed_duration_min),
            number_failure('bp_systolic_pre', bp_systolic_pre, parsed_bp_systolic_pre),
            number_failure('bp_diastolic_pre', bp_diastolic_pre, parsed_bp_diastolic_pre),
            number_failure('bp_systolic_max', bp_systolic_max, parsed_bp_systolic_max),
            number_failure('bp_diastolic_max', bp_diastolic_max, parsed_bp_diastolic_max),
            number_failure('heart_rate_max', heart_rate_max, parsed_heart_rate_max),
            number_failure('spo2_min', spo2_min, parsed_spo2_min),
            range_failure('infusions', 'dose_mg_per_kg', parsed_dose_mg_per_kg),
            range_failure('infusions', 'duration_min', parsed_duration_min),
            range_failure('infusions', 'bp_systolic_pre', parsed_bp_systolic_pre),
            range_failure('infusions', 'bp_diastolic_pre', parsed_bp_diastolic_pre),
            range_failure('infusions', 'bp_systolic_max', parsed_bp_systolic_max),
            range_failure('infusions', 'bp_diastolic_max', parsed_bp_diastolic_max),
            range_failure('infusions', 'heart_rate_max', parsed_heart_rate_max),
            range_failure('infusions', 'spo2_min', parsed_spo2_min),
            future_failure('infused_at', parsed_infused_at, coalesce(clinic_as_of, getvariable('as_of'))),
            implausible_failure('infused_at', parsed_infused_at, birth_year),
            case when not is_known_patient then {
                        'reason': 'unknown_patient',
                        'detail': 'patient_id is not among the accepted patient records'
                    }
            end
        ) as failure
    from parsed
),

repeated_key_hashes as (
    -- The keys with more than one passing row, found as assessments_validated.sql finds them (sorted hashes;
    -- a collision only adds a candidate, which key_variants drops).
    select distinct key_hash
    from (
        select
            key_hash,
            lag(key_hash) over (order by key_hash) as previous_hash
        from (
            select hash(patient_id, infused_at) as key_hash
            from typed
            where failure is null
        )
    )
    where key_hash = previous_hash
),

key_variants as (
    -- Two different records of one session cannot both be right: every copy is rejected.
    select
        patient_id,
        infused_at,
        -- A group's min and max are never null, and DuckDB compares nulls inside a struct as equal: <> here
        -- means the same as "is distinct from" (which sqlfluff's DuckDB grammar cannot parse).
        min(recorded_values) <> max(recorded_values) as has_conflict,
        -- The first copy (by file, then row) is kept; later identical copies are exact duplicates.
        min({'file': source_file, 'row': row_number}) as first_copy,
        string_agg(row_number::varchar, ', ' order by row_number) as row_numbers
    from (
        -- The values two copies must share to be one record.
        select
            *,
            {
                'd': dose_mg_per_kg, 'm': duration_min, 'p': provider_id, 's0': bp_systolic_pre,
                'd0': bp_diastolic_pre, 's1': bp_systolic_max, 'd1': bp_diastolic_max, 'h': heart_rate_max,
                'o': spo2_min, 'a': adverse_events, 'r': rescue_medication
            } as recorded_values
        from typed
        where failure is null and hash(patient_id, infused_at) in (select key_hash from repeated_key_hashes)
    )
    group by patient_id, infused_at
    having count(*) > 1
),

final as (
    select
        typed.* exclude (failure),
        coalesce(
            typed.failure,
            case when key_variants.has_conflict then {
                        'reason': 'duplicate_conflict',
                        'detail': 'rows '
                        || key_variants.row_numbers
                        || ' share patient_id and infused_at with different values'
                    }
            end
        ) as failure,
        coalesce(
            typed.failure is null and not key_variants.has_conflict
            and {'file': typed.source_file, 'row': typed.row_number} <> key_variants.first_copy,
            false
        ) as is_exact_duplicate
    from typed
    -- Equality only, so that DuckDB can hash-join (on the few repeated keys); the judgement applies to
    -- passing rows alone.
    left join key_variants
        on typed.patient_id = key_variants.patient_id
            and typed.infused_at = key_variants.infused_at
)

select
    * exclude (failure),
    failure.reason,
    failure.detail
from final
