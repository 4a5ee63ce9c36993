-- Title:   Every row of the assessment files, typed and totalled, with the first reason it cannot be used
-- Grain:   one row per (source_file, row_number); every data row read
-- Inputs:  raw.assessments, seeds.instruments, quarantine.patients_validated
-- Rule:    shared spec §8: the first failing check in the spec's order; duplicates judged among rows passing every other check
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows

with raw_items as (
    select
        *,
        case when _item_values is not null then array_to_string(_item_values, '|') end as joined_items
    from raw.assessments
),

raw_rows as (
    select
        * exclude (joined_items),
        -- Nearly every row with items has only blank or plain-number items. One regex over the items joined by
        -- '|' proves it: as many fields as items means no item holds a '|' (nor is null, which the join skips),
        -- so each field is an item; each is blank or a number strict_number takes. Those rows' items are then
        -- cast without a regex per item and have no unparseable item (a million patients, 1.8 million rows
        -- with items: the parsing 8.8 to 4.1 s of CPU time, the model 27.6 to 22.3 s, the same table).
        coalesce(
            length(joined_items) - length(replace(joined_items, '|', '')) = len(_item_values) - 1
            and regexp_full_match(
                joined_items,
                '( *[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)? *'
                || '(\|( *[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)? *)*'
            ),
            false
        ) as items_are_plain
    from raw_items
),

instruments as (
    select * from seeds.instruments
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

-- parsed and totalled are folded into typed, which is computed once (materialized): typed has three
-- consumers, and left to itself DuckDB would store the wide parsed rows and work out each row's failure
-- three times (half this model's time).
parsed as not materialized (
    select
        -- Only the columns validation reads: the rest of the row is kept in raw for rejected_rows.
        raw_rows._source_file,
        raw_rows._row_number,
        raw_rows._parse_error,
        raw_rows.patient_id,
        raw_rows.instrument,
        raw_rows.administered_at,
        raw_rows.score,
        blank_to_null(raw_rows.patient_id) as clean_patient_id,
        lower(blank_to_null(raw_rows.instrument)) as clean_instrument,
        accepted_patients.patient_id is not null as is_known_patient,
        accepted_patients.birth_year,
        accepted_patients.clinic_as_of,
        -- A row of an unknown patient (rejected below) is read in the default zone for its detail.
        iso_timestamp(
            raw_rows.administered_at, coalesce(accepted_patients.clinic_timezone, getvariable('clinic_timezone'))
        ) as parsed_administered_at,
        blank_to_null(score) as score_text,
        strict_number(score) as parsed_score,
        -- Most rows carry a total and no items: their lists stay null, and the list work below runs
        -- only on the rows that have items.
        case
            when items_are_plain then list_transform(_item_values, lambda item: try_cast(trim(item) as double))
            when _item_values is not null then list_transform(_item_values, lambda item: strict_number(item))
        end as item_scores,
        -- The first item that is given but is not a number, named for the detail. sqlfluff's DuckDB grammar
        -- has no two-argument lambda: the noqa lines below are unparsable to it, and their layout its own.
        -- noqa: disable=LT01,LT02
        case when _item_values is not null and not items_are_plain then list_filter(
            list_transform(_item_values, lambda item, position:  -- noqa: PRS
                case when blank_to_null(item) is not null and strict_number(item) is null
                    then 'item_' || position || ' = ''' || item || '''' end),
            lambda problem: problem is not null
        )[1] end as unparseable_item,
        -- noqa: enable=LT01,LT02
        instruments.instrument is not null as is_known_instrument,
        instruments.score_min,
        instruments.score_max,
        instruments.item_count,
        instruments.item_min,
        instruments.item_max,
        instruments.total_is_item_sum
    from raw_rows
    left join instruments
        on lower(blank_to_null(raw_rows.instrument)) = instruments.instrument
    left join accepted_patients
        on blank_to_null(raw_rows.patient_id) = accepted_patients.patient_id
),

totalled as not materialized (
    select
        parsed.*,
        -- The total is derived from the items only when the score is empty and the
        -- instrument's total is the plain sum of all its items (not QIDS, not BPI).
        coalesce(
            score_text is null and total_is_item_sum
            and len(item_scores) >= item_count
            and list_count(item_scores[1:item_count]) = item_count,
            false
        ) as is_score_from_items,
        case
            when score_text is not null then parsed_score
            when is_score_from_items then list_sum(item_scores[1:item_count])
        end as total_score,
        -- noqa: disable=LT01,LT02
        case when item_scores is not null then list_filter(
            list_transform(item_scores, lambda item, position:  -- noqa: PRS
                case when item < item_min or item > item_max
                    then 'item_' || position || ' = ' || item || ' is outside ' || item_min || ' to ' || item_max end),
            lambda problem: problem is not null
        )[1] end as out_of_range_item
    -- noqa: enable=LT01,LT02
    from parsed
),

typed as materialized (
    select
        _source_file as source_file,
        _row_number as row_number,
        clean_patient_id as patient_id,
        clean_instrument as instrument,
        parsed_administered_at as administered_at,
        total_score as score,
        case when is_score_from_items then 'items' else 'given' end as score_source,
        coalesce(item_scores, []) as item_scores,
        case when clean_instrument = 'phq9' then item_scores[9] end as phq9_item9,
        coalesce(
            case when _parse_error is not null then {'reason': 'malformed_row', 'detail': _parse_error} end,
            missing_failure('patient_id', raw_rows.patient_id),
            missing_failure('instrument', raw_rows.instrument),
            missing_failure('administered_at', raw_rows.administered_at),
            identifier_failure('patient_id', raw_rows.patient_id),
            case when score_text is null and not is_score_from_items
                    and (is_known_instrument or coalesce(list_count(item_scores), 0) = 0)
                    then {
                            'reason': 'missing_field',
                            'detail': 'score is empty and the total cannot be derived from complete item columns'
                        }
            end,
            timestamp_failure('administered_at', raw_rows.administered_at, parsed_administered_at),
            number_failure('score', raw_rows.score, parsed_score),
            case when unparseable_item is not null
                    then {'reason': 'unparseable_number', 'detail': unparseable_item || ' is not a number'}
            end,
            case when not is_known_instrument
                    then {
                            'reason': 'unknown_instrument',
                            'detail': 'instrument ''' || raw_rows.instrument || ''' is not in the instrument registry'
                        }
            end,
            case when total_score < score_min or total_score > score_max
                    then {
                            'reason': 'score_out_of_range',
                            'detail': 'score ' || total_score || ' is outside ' || clean_instrument || ' range '
                            || score_min || ' to ' || score_max
                        }
            end,
            case when out_of_range_item is not null
                    then {'reason': 'score_out_of_range', 'detail': out_of_range_item}
            end,
            future_failure('administered_at', parsed_administered_at, coalesce(clinic_as_of, getvariable('as_of'))),
            implausible_failure('administered_at', parsed_administered_at, birth_year),
            case when not is_known_patient then {
                        'reason': 'unknown_patient',
                        'detail': 'patient_id is not among the accepted patient records'
                    }
            end
        ) as failure
    from totalled as raw_rows
),

repeated_key_hashes as (
    -- Nearly every key has one row. A hash of the key finds the few with more in one cheap pass over the
    -- passing rows; a collision only adds a candidate, which key_variants drops. The hashes are sorted and
    -- each compared with the one before it: for the sixteen million assessments of a million patients a
    -- fifth faster than grouping them (1.1 s against 1.5 to 1.9 s), and no slower for a tenth of them.
    select distinct key_hash
    from (
        select
            key_hash,
            lag(key_hash) over (order by key_hash) as previous_hash
        from (
            select hash(patient_id, instrument, administered_at) as key_hash
            from typed
            where failure is null
        )
    )
    where key_hash = previous_hash
),

key_variants as (
    -- Two different scores for one questionnaire at one moment cannot both be right: every copy is rejected.
    select
        patient_id,
        instrument,
        administered_at,
        -- A group's min and max are never null, and DuckDB compares nulls inside a struct as equal: <> here
        -- means the same as "is distinct from" (which sqlfluff's DuckDB grammar cannot parse).
        min({'score': score, 'items': item_scores}) <> max({'score': score, 'items': item_scores})
            as has_conflict,
        -- The first copy (by file, then row) is kept; later identical copies are exact duplicates.
        min({'file': source_file, 'row': row_number}) as first_copy,
        string_agg(row_number::varchar, ', ' order by row_number) as row_numbers
    from typed
    where failure is null
        and hash(patient_id, instrument, administered_at) in (select key_hash from repeated_key_hashes)
    group by patient_id, instrument, administered_at
    having count(*) > 1
),

final as (
    select
        typed.* exclude (failure),
        coalesce(
            typed.failure,
            case when key_variants.has_conflict then {
                        'reason': 'duplicate_conflict',
                        'detail': 'rows ' || key_variants.row_numbers
                        || ' share patient_id, instrument and administered_at with different values'
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
            and typed.instrument = key_variants.instrument
            and typed.administered_at = key_variants.administered_at
)

select
    * exclude (failure),
    failure.reason,
    failure.detail
from final
