-- A spelling in view_position_spellings that is itself a canonical view position would map an image twice.
select spellings.spelling
from {{ ref('view_position_spellings') }} as spellings
inner join {{ ref('view_positions') }} as canonical
    on upper(trim(spellings.spelling)) = canonical.view_position
