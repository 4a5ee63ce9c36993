-- Title:   Every row a clinic sent that the pipeline could not use, with why and the row as sent
-- Grain:   one row per (source_file, row_number, record_type); only rejected rows (one export row can hold two record types)
-- Note:    line_number is the line of the file (the header is line 1; a spreadsheet's row) where the row starts
-- Inputs:  quarantine.clinics_validated, quarantine.patients_validated, quarantine.infusions_validated, quarantine.assessments_validated, raw.clinics, raw.patients, raw.infusions, raw.assessments
-- Rule:    shared spec §8: nothing is lost; raw_record is the whole original row as sent, as JSON
-- Refresh: per patient; a clinic row (no patient) changes only with the clinics, which recompute every patient

with rejected as (
    select
        source_file,
        row_number,
        'clinic' as record_type,
        null::varchar as patient_id,
        reason,
        detail
    from quarantine.clinics_validated
    where reason is not null
    union all
    select
        source_file,
        row_number,
        'patient',
        patient_id,
        reason,
        detail
    from quarantine.patients_validated
    where reason is not null
    union all
    select
        source_file,
        row_number,
        'infusion',
        patient_id,
        reason,
        detail
    from quarantine.infusions_validated
    where reason is not null
    union all
    select
        source_file,
        row_number,
        'assessment',
        patient_id,
        reason,
        detail
    from quarantine.assessments_validated
    where reason is not null
),

-- The original rows of the rejected ones, every column as text; the pipeline's own columns start with '_'.
-- Only rejected rows are turned into JSON: a few in millions.
raw_records as (
    select
        _source_file,
        _row_number,
        _line_number,
        'clinic' as record_type,
        to_json(struct_pack(*columns(* exclude (_source_file, _row_number, _line_number, _parse_error)))) as raw_record
    from raw.clinics
    where (_source_file, _row_number) in (
            select (source_file, row_number) from rejected
            where record_type = 'clinic'
        )
    union all
    select
        _source_file,
        _row_number,
        _line_number,
        'patient',
        to_json(struct_pack(*columns(* exclude (_source_file, _row_number, _line_number, _parse_error))))
    from raw.patients
    where (_source_file, _row_number) in (
            select (source_file, row_number) from rejected
            where record_type = 'patient'
        )
    union all
    select
        _source_file,
        _row_number,
        _line_number,
        'infusion',
        to_json(struct_pack(*columns(* exclude (_source_file, _row_number, _line_number, _parse_error))))
    from raw.infusions
    where (_source_file, _row_number) in (
            select (source_file, row_number) from rejected
            where record_type = 'infusion'
        )
    union all
    select
        _source_file,
        _row_number,
        _line_number,
        'assessment',
        to_json(struct_pack(*columns(* exclude (_source_file, _row_number, _line_number, _parse_error, _item_values))))
    from raw.assessments
    where (_source_file, _row_number) in (
            select (source_file, row_number) from rejected
            where record_type = 'assessment'
        )
),

final as (
    select
        rejected.source_file,
        rejected.row_number,
        rejected.record_type,
        rejected.reason,
        rejected.detail,
        raw_records.raw_record,
        raw_records._line_number as line_number,
        rejected.patient_id
    from rejected
    inner join raw_records
        on rejected.source_file = raw_records._source_file
            and rejected.row_number = raw_records._row_number
            and rejected.record_type = raw_records.record_type
)

select * from final
order by source_file, row_number, record_type
