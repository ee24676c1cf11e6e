{#- Every way a view position is written that has a plain meaning, upper case, with its canonical value: the canonical
    values of the seed view_positions themselves, and the spellings of the seed view_position_spellings (full words,
    abbreviations, other lateral names, ViewCodeSequence code meanings). -#}
with canonical as (
    select view_position as spelling, view_position from {{ ref('view_positions') }}
),

spelled as (
    select upper(trim(spelling)) as spelling, view_position from {{ ref('view_position_spellings') }}
),

final as (
    select cast(spelling as text) as spelling, cast(view_position as text) as view_position from canonical
    union all
    select cast(spelling as text), cast(view_position as text) from spelled
)

select * from final
