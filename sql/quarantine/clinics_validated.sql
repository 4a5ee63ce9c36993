-- Title:   Every row of the clinic files, typed, with the first reason it cannot be used; an unknown time zone fails the run
-- Grain:   one row per (source_file, row_number); every data row read
-- Inputs:  raw.clinics
-- Rule:    shared spec §10.1 and §8: a clinic's timezone must be an IANA name; duplicates judged among rows passing every other check

with raw_rows as (
    select * from raw.clinics
),

time_zones as (
    -- The IANA names DuckDB can convert to (with their backward-compatible aliases, such as US/Mountain).
    select name from pg_timezone_names()
),

typed as (
    select
        _source_file as source_file,
        _row_number as row_number,
        _line_number as line_number,
        blank_to_null(clinic_id) as clinic_id,
        blank_to_null(clinic_name) as clinic_name,
        blank_to_null(timezone) as timezone,
        coalesce(
            case when _parse_error is not null then {'reason': 'malformed_row', 'detail': _parse_error} end,
            missing_failure('clinic_id', clinic_id),
            identifier_failure('clinic_id', clinic_id)
        ) as failure
    from raw_rows
),

checked as (
    -- Spec §10.1: an unknown time zone fails the run, naming the file, the row and the value: every timestamp
    -- of the clinic's patients would be read in a zone nobody meant.
    select
        *,
        case when failure is null and timezone is not null and timezone not in (select name from time_zones)
                then error(
                        source_file || ' row ' || row_number
                        || coalesce(' (line ' || line_number || ')', '')
                        || ': timezone = ''' || shown(timezone)
                        || ''' is not an IANA time zone name (such as America/Denver); clinic ' || clinic_id
                    )
        end as zone_check
    from typed
),

key_variants as (
    -- The same clinic with a different name or zone cannot be resolved here: every copy is rejected.
    select
        clinic_id,
        min({'n': clinic_name, 't': timezone}) <> max({'n': clinic_name, 't': timezone}) as has_conflict,
        min({'file': source_file, 'row': row_number}) as first_copy,
        string_agg(row_number::varchar, ', ' order by row_number) as row_numbers
    from checked
    where failure is null
    group by clinic_id
    having count(*) > 1
),

final as (
    select
        checked.source_file,
        checked.row_number,
        checked.clinic_id,
        checked.clinic_name,
        checked.timezone,
        coalesce(
            checked.failure,
            case when key_variants.has_conflict then {
                        'reason': 'duplicate_conflict',
                        'detail': 'rows ' || key_variants.row_numbers
                        || ' share clinic_id with a different clinic_name or timezone'
                    }
            end
        ) as failure,
        coalesce(
            checked.failure is null and not key_variants.has_conflict
            and {'file': checked.source_file, 'row': checked.row_number} <> key_variants.first_copy,
            false
        ) as is_exact_duplicate
    from checked
    left join key_variants
        on checked.clinic_id = key_variants.clinic_id
    -- Read here so that the check runs: a column no one reads is never computed.
    where checked.zone_check is null
)

select
    * exclude (failure),
    failure.reason,
    failure.detail
from final
