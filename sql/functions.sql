-- Title:   Parsing and checking macros shared by the quarantine SQL
-- Grain:   none: CREATE MACRO statements, run on every connection before the table SQL
-- Inputs:  seeds.value_ranges; variables as_of (TIMESTAMP, local time of clinic_timezone) and clinic_timezone (VARCHAR)
-- Rule:    shared spec §1 (timestamps) and §8 (reasons); each check returns a {reason, detail} struct or null

-- Blank means empty or only white space: exports pad fields with spaces.
create or replace macro blank_to_null(value) as nullif(trim(value), '');

-- A value as a detail shows it: at most 200 characters (the whole row is in raw_record).
create or replace macro shown(value) as (
    case when length(value) > 200 then left(value, 199) || '…' else value end
);

-- ISO 8601 only (spec §1, §10.1): a date is 00:00 local time of the patient's
-- clinic (zone, an IANA name); a date-time with an offset or Z is converted to
-- it, without one it is already local. The regexes are strict because DuckDB's cast also accepts
-- forms such as 2026-1-5 that are not ISO 8601. Surrounding spaces are allowed
-- (DuckDB's cast skips them): one regex decides the common case, no trimmed copy.
create or replace macro iso_timestamp(value, zone) as (
    case
        when regexp_full_match(value, ' *\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)? *')
            then try_cast(value as timestamp)
        -- Offsets that exist on Earth: -14:00 to +14:00 (a +99:00 would move the time by days).
        when regexp_full_match(
                value,
                ' *\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?'
                || '(Z|[+-](0\d|1[0-3])(:?[0-5]\d)?|[+-]14(:?00)?) *'
            )
            then timezone(zone, try_cast(value as timestamptz))
    end
);

-- A plain decimal number; DuckDB's cast alone would also take 'nan', 'inf' and '1_000'.
create or replace macro strict_number(value) as (
    case
        when regexp_full_match(trim(value), '[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?')
            then try_cast(trim(value) as double)
    end
);

create or replace macro missing_failure(field_name, value) as (
    case when blank_to_null(value) is null
            then {'reason': 'missing_field', 'detail': field_name || ' is empty'}
    end
);

-- The checks take the value as sent and, where it needs parsing, as parsed: each value is parsed once per row.
create or replace macro timestamp_failure(field_name, value, parsed) as (
    case when parsed is null
            then {
                    'reason': 'unparseable_timestamp',
                    'detail': field_name || ' = ''' || shown(value) || ''' is not an ISO 8601 date or date-time'
                    || case when regexp_matches(value, '\d[T ]\d{2}:\d{2}.*[+-]\d{2}:?\d{0,2} *$')
                            then ' with an offset from -14:00 to +14:00'
                        else ''
                    end
                }
    end
);

-- Identifiers are kept as sent (spec §7), so one with white space around it would not match the same
-- patient's other rows, or would match another's once trimmed: rejected, never trimmed silently.
create or replace macro identifier_failure(field_name, value) as (
    case when regexp_matches(value, '^\s|\s$') and blank_to_null(value) is not null
            then {
                    'reason': 'invalid_identifier',
                    'detail': field_name || ' = ''' || shown(value) || ''' has white space before or after it; '
                    || 'identifiers are kept as sent: remove it in the export'
                }
    end
);

-- A date before 1900, or before the patient's year of birth, is a typing slip (0201 for 2021), not a visit.
create or replace macro implausible_failure(field_name, value, birth_year) as (
    case
        when value < timestamp '1900-01-01'
            then {
                    'reason': 'implausible_timestamp',
                    'detail': field_name || ' ' || strftime(value, '%Y-%m-%d') || ' is before 1900'
                }
        when year(value) < birth_year
            then {
                    'reason': 'implausible_timestamp',
                    'detail': field_name || ' ' || strftime(value, '%Y-%m-%d')
                    || ' is before the patient''s year of birth, ' || birth_year
                }
    end
);

create or replace macro number_failure(field_name, value, parsed) as (
    case when parsed is null and blank_to_null(value) is not null
            then {
                    'reason': 'unparseable_number',
                    'detail': field_name || ' = ''' || shown(value) || ''' is not a number'
                }
    end
);

create or replace macro whole_number_failure(field_name, value, parsed) as (
    case when parsed <> floor(parsed)
            then {
                    'reason': 'unparseable_number',
                    'detail': field_name || ' = ''' || shown(value) || ''' is not a whole number'
                }
    end
);

-- Plausible ranges are data (seeds.value_ranges): {min_value, max_value} of a field, an empty maximum being
-- the as-of year. Uncorrelated, so DuckDB looks it up once per query, not once per row.
create or replace macro value_range(record, field_name) as (
    select {'min_value': min_value, 'max_value': coalesce(max_value, year(getvariable('as_of')))}
    from seeds.value_ranges
    where record_type = record and field = field_name
);

create or replace macro range_failure(record, field_name, value) as (
    case when value < value_range(record, field_name).min_value or value > value_range(record, field_name).max_value
            then {
                    'reason': 'value_out_of_range',
                    'detail': field_name
                    || ' = '
                    || value
                    || ' is outside '
                    || value_range(record, field_name).min_value
                    || ' to ' || value_range(record, field_name).max_value
                }
    end
);

-- The run's as-of time (local time of the clinic_timezone setting) as local time in another zone.
create or replace macro as_of_in(zone) as (
    timezone(zone, timezone(getvariable('clinic_timezone'), getvariable('as_of')))
);

-- as_of: the run's as-of time in the row's clinic's zone (as_of_in), so that each clinic's "now" is the same instant.
-- The detail does not name the as-of time (meta.refreshes keeps it): a row still in the future the next night is
-- rejected exactly as before, so an incremental refresh recomputes only the patients of rows the as-of time has
-- passed (pipelines.incremental.policy), not every patient with a date typed years ahead.
create or replace macro future_failure(field_name, value, as_of) as (
    case when value > as_of
            then {
                    'reason': 'future_timestamp',
                    'detail': field_name
                    || ' '
                    || strftime(value, '%Y-%m-%dT%H:%M:%S')
                    || ' (clinic local time) is after the refresh''s as-of time'
                }
    end
);

-- The cohorts a row counts in for the marts' (dimension, dimension_value) grain:
-- the whole network, its clinic and its primary indication. Use with
-- unnest(cohorts_of(clinic_id, primary_indication), recursive := true).
create or replace macro cohorts_of(clinic, indication) as [
    {'dimension': 'network', 'dimension_value': 'all'},
    {'dimension': 'clinic', 'dimension_value': clinic},
    {'dimension': 'indication', 'dimension_value': indication}
];
