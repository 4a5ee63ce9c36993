-- Title:   What became of every row of every file read: accepted, rejected or an exact duplicate
-- Grain:   one row per (source_file, record_type); a FHIR bundle or a visit export can hold several record types
-- Inputs:  raw.patients, raw.infusions, raw.assessments, quarantine.patients_validated, quarantine.infusions_validated, quarantine.assessments_validated
-- Rule:    shared spec §8: rows_read = rows_accepted + rows_rejected + duplicates_removed, checked before publication

with rows_read as (
    select
        'patient' as record_type,
        _source_file as source_file,
        count(*) as row_count
    from raw.patients
    group by all
    union all
    select
        'infusion',
        _source_file,
        count(*)
    from raw.infusions
    group by all
    union all
    select
        'assessment',
        _source_file,
        count(*)
    from raw.assessments
    group by all
),

validated as (
    select
        'patient' as record_type,
        source_file,
        reason,
        is_exact_duplicate
    from quarantine.patients_validated
    union all
    select
        'infusion',
        source_file,
        reason,
        is_exact_duplicate
    from quarantine.infusions_validated
    union all
    select
        'assessment',
        source_file,
        reason,
        is_exact_duplicate
    from quarantine.assessments_validated
),

outcomes_of_rows as (
    select
        record_type,
        source_file,
        -- Accepted is what staging keeps: no reason, and not a later copy of an exact duplicate.
        count(*) filter (where reason is null and not is_exact_duplicate) as rows_accepted,
        count(*) filter (where reason is not null) as rows_rejected,
        count(*) filter (where is_exact_duplicate) as duplicates_removed
    from validated
    group by all
),

final as (
    select
        rows_read.source_file,
        rows_read.record_type,
        rows_read.row_count as rows_read,
        coalesce(outcomes_of_rows.rows_accepted, 0) as rows_accepted,
        coalesce(outcomes_of_rows.rows_rejected, 0) as rows_rejected,
        coalesce(outcomes_of_rows.duplicates_removed, 0) as duplicates_removed
    from rows_read
    left join outcomes_of_rows using (record_type, source_file)
)

select * from final
order by source_file, record_type
