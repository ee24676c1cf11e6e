{#- Exposure in mAs and exposure time in ms from whichever tags an image has, by the seed exposure_tag_units: every
    exposure tag DICOM defines (mAs, uAs, mA x ms, uA, us) converted to one unit, the most precise source first, and
    the source named. Only values that passed the range checks (int_header_measurements_normalized) are used. -#}
with headers as (
    select dicom_id from {{ ref('stg_dicom__headers') }}
),

measurements as (
    select dicom_id, tag, normalized_value
    from {{ ref('int_header_measurements_normalized') }}
    where normalized_value is not null
),

units as (
    select * from {{ ref('exposure_tag_units') }}
),

candidates as (
    select
        first_value.dicom_id,
        units.quantity,
        units.priority,
        units.source_name,
        first_value.normalized_value * units.first_factor
            * coalesce(second_value.normalized_value * units.second_factor, 1.0) as value
    from units
    inner join measurements as first_value
        on first_value.tag = units.first_tag
    left join measurements as second_value
        on second_value.dicom_id = first_value.dicom_id
        and second_value.tag = units.second_tag
    where units.second_tag is null or second_value.normalized_value is not null
),

ranked as (
    select
        *,
        row_number() over (partition by dicom_id, quantity order by priority) as preference
    from candidates
),

chosen as (
    select * from ranked where preference = 1
),

final as (
    select
        headers.dicom_id,
        cast(exposure.value as double) as exposure_mas,
        cast(coalesce(exposure.source_name, 'none') as text) as exposure_mas_source,
        cast(exposure_time.value as double) as exposure_time_ms,
        cast(coalesce(exposure_time.source_name, 'none') as text) as exposure_time_source
    from headers
    left join chosen as exposure
        on headers.dicom_id = exposure.dicom_id
        and exposure.quantity = 'exposure_mas'
    left join chosen as exposure_time
        on headers.dicom_id = exposure_time.dicom_id
        and exposure_time.quantity = 'exposure_time_ms'
)

select * from final
