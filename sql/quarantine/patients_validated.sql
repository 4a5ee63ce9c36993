-- Title:   Every row of the patient files, typed, with the first reason it cannot be used
-- Grain:   one row per (source_file, row_number); every data row read
-- Inputs:  raw.patients, seeds.value_ranges
-- Rule:    shared spec §8: the first failing check in the spec's order; duplicates judged among rows passing every other check
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with raw_rows as (
    select * from raw.patients
),

typed as (
    select
        _source_file as source_file,
        _row_number as row_number,
        blank_to_null(patient_id) as patient_id,
        blank_to_null(clinic_id) as clinic_id,
        blank_to_null(primary_indication) as primary_indication,
        strict_number(birth_year)::integer as birth_year,
        blank_to_null(sex) as sex,
        blank_to_null(referral_source) as referral_source,
        coalesce(
            case when _parse_error is not null then {'reason': 'malformed_row', 'detail': _parse_error} end,
            missing_failure('patient_id', patient_id),
            missing_failure('clinic_id', clinic_id),
            missing_failure('primary_indication', primary_indication),
            number_failure('birth_year', birth_year),
            range_failure('patients', 'birth_year', strict_number(birth_year))
        ) as failure
    from raw_rows
),

key_variants as (
    -- The same patient with different values cannot be resolved here: every copy is rejected.
    select
        patient_id,
        count(distinct {'c': clinic_id, 'i': primary_indication, 'b': birth_year, 's': sex, 'r': referral_source})
            as variant_count,
        string_agg(row_number::varchar, ', ' order by row_number) as row_numbers
    from typed
    where failure is null
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
        coalesce(
            typed.failure,
            case when typed.failure is null and key_variants.variant_count > 1 then {
                'reason': 'duplicate_conflict',
                'detail': 'rows ' || key_variants.row_numbers || ' share patient_id with different values'} end
        ) as failure,
        typed.failure is null and key_variants.variant_count = 1
            and row_number() over (partition by typed.patient_id, typed.failure is null order by typed.row_number) > 1
            as is_exact_duplicate
    from typed
    left join key_variants
        -- Equality only, so that DuckDB can hash-join; the conflict applies to passing rows alone.
        on typed.patient_id = key_variants.patient_id
)

select
    * exclude (failure),
    failure.reason as reason,
    failure.detail as detail
from final
