-- Question: What did the clinics send that could not be used, and why?
-- Reads:    quarantine.file_accounts, quarantine.rejected_rows

select
    a.source_file,
    a.rows_read,
    r.reason,
    count(r.row_number) as rejected_rows,
    round(count(r.row_number) / a.rows_read, 4) as share_of_file,
    min(r.row_number) as first_row_number
from quarantine.file_accounts as a
inner join quarantine.rejected_rows as r using (source_file)
group by a.source_file, a.rows_read, r.reason
order by a.source_file asc, rejected_rows desc
