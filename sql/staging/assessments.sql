-- Title:   Accepted assessments, typed, with totals derived from items where the score was empty
-- Grain:   one row per (patient_id, instrument, administered_at)
-- Inputs:  quarantine.assessments_validated
-- Rule:    shared spec §2, §8-9: rows without a reason; of exact duplicates the first row is kept
-- Refresh: per patient; an incremental refresh recomputes only patients with new or changed rows
-- Materialized: view; staging only filters and renames the validated rows, which are stored once

with validated as (
    select * from quarantine.assessments_validated
),

final as (
    select
        patient_id,
        instrument,
        administered_at,
        score,
        score_source,
        item_scores,
        phq9_item9,
        phq9_item9 >= 1 as has_suicidality_flag,  -- spec §2: PHQ-9 item 9 >= 1
        source_file,
        row_number as source_row_number
    from validated
    where reason is null and not is_exact_duplicate
)

select * from final
