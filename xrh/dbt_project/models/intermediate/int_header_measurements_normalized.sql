{#- Every measured numeric header value, one row per image and tag, judged against the physical ranges of the seed
    header_value_ranges: kept, or set to NULL as a "not recorded" sentinel (zero or negative, as vendors write KVP = 0,
    Exposure = 0, PixelSpacing = 0\0) or as outside the plausible range. The raw value stays beside the normalised one. -#}
with headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

values_long as (
    {%- for tag, column in measured_header_tags().items() %}
    select dicom_id, '{{ tag }}' as tag, {{ column }} as raw_value from headers where {{ column }} is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

ranges as (
    select * from {{ ref('header_value_ranges') }}
),

judged as (
    select
        values_long.dicom_id,
        values_long.tag,
        ranges.unit,
        values_long.raw_value,
        ranges.min_value,
        ranges.max_value,
        ranges.source,
        case
            when values_long.raw_value <= 0 then 'not_recorded_sentinel'
            when values_long.raw_value < ranges.min_value or values_long.raw_value > ranges.max_value
                then 'outside_physical_range'
            else 'kept'
        end as rule
    from values_long
    left join ranges
        on values_long.tag = ranges.tag
),

final as (
    select
        dicom_id,
        cast(tag as text) as tag,
        cast(unit as text) as unit,
        cast(raw_value as double) as raw_value,
        cast(case when rule = 'kept' then raw_value end as double) as normalized_value,
        cast(rule as text) as rule,
        cast(case
            when rule = 'not_recorded_sentinel' then
                tag || ' = ' || cast(raw_value as varchar) || ': zero or negative, which archives write for "not recorded"'
            when rule = 'outside_physical_range' then
                tag || ' = ' || cast(raw_value as varchar) || ' ' || unit || ' lies outside '
                || cast(min_value as varchar) || '-' || cast(max_value as varchar) || ' '
                || unit || ' (' || source || ')'
        end as text) as reason
    from judged
)

select * from final
