-- Title:   What became of every line and row of every file read: accepted, rejected or an exact duplicate
-- Grain:   one row per (source_file, record_type); a FHIR bundle or a visit export can hold several record types
-- Inputs:  raw.file_states, raw.clinics, raw.patients, raw.infusions, raw.assessments, quarantine.clinics_validated, quarantine.patients_validated, quarantine.infusions_validated, quarantine.assessments_validated
-- Rule:    shared spec §8: rows_read = rows_accepted + rows_rejected + duplicates_removed; for a CSV lines_read = header_lines + blank_lines + continuation_lines + rows_read; both checked before publication

with files_read as (
    -- Every contract CSV read, a file without a single row included, with where its lines went.
    select
        file as source_file,
        case record_type
            when 'clinics' then 'clinic'
            when 'patients' then 'patient'
            when 'infusions' then 'infusion'
            when 'assessments' then 'assessment'
        end as record_type,
        lines as lines_read,
        header_lines,
        blank_lines,
        continuation_lines
    from raw.file_states
    where record_type is not null
),

rows_read as (
    select
        'clinic' as record_type,
        _source_file as source_file,
        count(*) as row_count
    from raw.clinics
    group by all
    union all
    select
        'patient',
        _source_file,
        count(*)
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
        'clinic' as record_type,
        source_file,
        reason,
        is_exact_duplicate
    from quarantine.clinics_validated
    union all
    select
        'patient',
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
        coalesce(files_read.source_file, rows_read.source_file) as source_file,
        coalesce(files_read.record_type, rows_read.record_type) as record_type,
        files_read.lines_read,
        files_read.header_lines,
        files_read.blank_lines,
        files_read.continuation_lines,
        coalesce(rows_read.row_count, 0) as rows_read,
        coalesce(outcomes_of_rows.rows_accepted, 0) as rows_accepted,
        coalesce(outcomes_of_rows.rows_rejected, 0) as rows_rejected,
        coalesce(outcomes_of_rows.duplicates_removed, 0) as duplicates_removed
    from files_read
    full outer join rows_read
        on files_read.source_file = rows_read.source_file
            and files_read.record_type = rows_read.record_type
    left join outcomes_of_rows
        on coalesce(files_read.source_file, rows_read.source_file) = outcomes_of_rows.source_file
            and coalesce(files_read.record_type, rows_read.record_type) = outcomes_of_rows.record_type
)

select * from final
order by source_file, record_type
