{#- Each image's view position as one of the canonical values of the seed view_positions, resolved in order from:
    ViewPosition as written (a canonical value, or a spelling in the seed view_position_spellings: full words, lower
    case, other lateral names), then ViewCodeSequence's code meaning (same spellings), then the performed procedure's
    description (seed procedure_view_patterns, only descriptions that name a single projection). The raw value and
    the source stay beside it. -#}
with headers as (
    select dicom_id, view_position as view_position_raw, view_code_meaning, procedure_description
    from {{ ref('stg_dicom__headers') }}
),

spellings as (
    select * from {{ ref('int_view_position_spellings') }}
),

-- The first pattern (alphabetically) decides when several match, so the result never depends on row order.
procedure_matches as (
    select
        headers.dicom_id,
        patterns.view_position,
        row_number() over (partition by headers.dicom_id order by patterns.pattern) as match_rank
    from headers
    inner join {{ ref('procedure_view_patterns') }} as patterns
        on upper(headers.procedure_description) like patterns.pattern
),

resolved as (
    select
        headers.dicom_id,
        headers.view_position_raw,
        headers.view_code_meaning,
        headers.procedure_description,
        from_view_position.view_position as from_view_position,
        from_code.view_position as from_code,
        procedure_matches.view_position as from_procedure
    from headers
    left join spellings as from_view_position
        on upper(headers.view_position_raw) = from_view_position.spelling
    left join spellings as from_code
        on upper(headers.view_code_meaning) = from_code.spelling
    left join procedure_matches
        on headers.dicom_id = procedure_matches.dicom_id
        and procedure_matches.match_rank = 1
),

final as (
    select
        dicom_id,
        cast(view_position_raw as text) as view_position_raw,
        cast(coalesce(from_view_position, from_code, from_procedure) as text) as view_position,
        cast(case
            when from_view_position is not null and from_view_position = view_position_raw then 'ViewPosition'
            when from_view_position is not null then 'ViewPosition spelling'
            when from_code is not null then 'ViewCodeSequence'
            when from_procedure is not null then 'PerformedProcedureStepDescription'
            else 'none'
        end as text) as view_position_source,
        cast(case
            when from_view_position is not null and from_view_position = view_position_raw then null
            when from_view_position is not null then
                'ViewPosition ''' || view_position_raw || ''' is spelled ' || from_view_position
                || ' in the DICOM defined terms (seed view_position_spellings)'
            when from_code is not null then
                'ViewPosition ' || coalesce('''' || view_position_raw || ''' is not a known spelling', 'is blank')
                || '; ViewCodeSequence says ''' || view_code_meaning || ''''
            when from_procedure is not null then
                'ViewPosition and ViewCodeSequence give no view; the procedure ''' || procedure_description
                || ''' names one projection (seed procedure_view_patterns)'
            else
                'no view: ViewPosition ' || coalesce('''' || view_position_raw || '''', 'blank')
                || ', ViewCodeSequence ' || coalesce('''' || view_code_meaning || '''', 'blank')
                || ', procedure ' || coalesce('''' || procedure_description || '''', 'blank')
                || ' (add the spelling to seed view_position_spellings if it has a plain meaning)'
        end as text) as reason
    from resolved
)

select * from final
