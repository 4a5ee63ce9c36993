-- Title:   Every row of the patient files, typed, with the first reason it cannot be used
-- Grain:   one row per (source_file, row_number); every data row read
-- Inputs:  raw.patients, seeds.value_ranges, quarantine.clinics_validated
-- Rule:    shared spec §8: the first failing check in the spec's order; duplicates judged among rows passing every other check
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with raw_rows as (
    select * from raw.patients
),

accepted_clinics as (
    -- The clinics staging.clinics will hold, with their time zones (spec §10.1).
    select
        clinic_id,
        timezone
    from quarantine.clinics_validated
    where reason is null and not is_exact_duplicate
),

parsed as (
    select
        raw_rows.*,
        strict_number(birth_year) as parsed_birth_year
    from raw_rows
),

typed as (
    select
        _source_file as source_file,
        _row_number as row_number,
        blank_to_null(patient_id) as patient_id,
        blank_to_null(clinic_id) as clinic_id,
        blank_to_null(primary_indication) as primary_indication,
        parsed_birth_year::integer as birth_year,
        blank_to_null(sex) as sex,
        blank_to_null(referral_source) as referral_source,
        coalesce(
            case when _parse_error is not null then {'reason': 'malformed_row', 'detail': _parse_error} end,
            missing_failure('patient_id', patient_id),
            missing_failure('clinic_id', clinic_id),
            missing_failure('primary_indication', primary_indication),
            identifier_failure('patient_id', patient_id),
            identifier_failure('clinic_id', clinic_id),
            number_failure('birth_year', birth_year, parsed_birth_year),
            whole_number_failure('birth_year', birth_year, parsed_birth_year),
            range_failure('patients', 'birth_year', parsed_birth_year)
        ) as failure
    from parsed
),

repeated_keys as (
    -- Nearly every patient has one row: the few with more are compared below.
    select patient_id
    from typed
    where failure is null
    group by patient_id
    having count(*) > 1
),

key_variants as (
    -- The same patient with different values cannot be resolved here: every copy is rejected.
    select
        patient_id,
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
            {'c': clinic_id, 'i': primary_indication, 'b': birth_year, 's': sex, 'r': referral_source}
                as recorded_values
        from typed
        where failure is null and patient_id in (select patient_id from repeated_keys)
    )
    group by patient_id
),

final as (
    select
        typed.source_file,
        typed.row_number,
        typed.patient_id,
        typed.clinic_id,
        typed.primary_indication,
        typed.birth_year,
        typed.sex,
        typed.referral_source,
        -- Spec §10.1: the zone the patient's timestamps are read in.
        coalesce(clinics.timezone, getvariable('clinic_timezone')) as clinic_timezone,
        coalesce(
            typed.failure,
            case when key_variants.has_conflict then {
                        'reason': 'duplicate_conflict',
                        'detail': 'rows ' || key_variants.row_numbers || ' share patient_id with different values'
                    }
            end
        ) as failure,
        coalesce(
            typed.failure is null and not key_variants.has_conflict
            and {'file': typed.source_file, 'row': typed.row_number} <> key_variants.first_copy,
            false
        ) as is_exact_duplicate
    from typed
    -- Equality only, so that DuckDB can hash-join; the judgement applies to passing rows alone.
    left join key_variants
        on typed.patient_id = key_variants.patient_id
    left join accepted_clinics as clinics
        on typed.clinic_id = clinics.clinic_id
)

select
    * exclude (failure),
    failure.reason,
    failure.detail
from final
