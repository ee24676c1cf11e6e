{#- One row per image and rule that nulled, mapped or excluded a header value on its way into acquisition: the raw
    value, the normalised value (NULL when nulled or excluded), the rule and the reason in words. The rules live in
    seeds (header_value_ranges, exposure_tag_units, view_position_spellings, procedure_view_patterns, detector_types,
    image_routing_rules); an image whose values all passed as written has no row. -#}
with measurements as (
    select
        dicom_id,
        tag as column_name,
        cast(raw_value as varchar) as raw_value,
        cast(null as varchar) as normalized_value,
        rule,
        reason
    from {{ ref('int_header_measurements_normalized') }}
    where rule != 'kept'
),

normalized as (
    select * from {{ ref('int_images_normalized') }}
),

views as (
    select
        dicom_id,
        'ViewPosition' as column_name,
        view_position_raw as raw_value,
        view_position as normalized_value,
        case view_position_source
            when 'ViewPosition spelling' then 'view_spelling_mapped'
            when 'ViewCodeSequence' then 'view_from_view_code_sequence'
            when 'PerformedProcedureStepDescription' then 'view_from_procedure_description'
            else 'view_unknown'
        end as rule,
        reason
    from {{ ref('int_images_view_resolved') }}
    where view_position_source != 'ViewPosition'
),

exposures as (
    select
        dicom_id,
        'exposure_mas' as column_name,
        exposure_mas_source as raw_value,
        cast(exposure_mas as varchar) as normalized_value,
        'unit_converted' as rule,
        'exposure in mAs computed from ' || exposure_mas_source || ' (seed exposure_tag_units)' as reason
    from normalized
    where exposure_mas_source not in ('Exposure', 'ExposureInmAs', 'none')
    union all
    select
        dicom_id,
        'exposure_time_ms',
        exposure_time_source,
        cast(exposure_time_ms as varchar),
        'unit_converted',
        'exposure time in ms computed from ' || exposure_time_source || ' (seed exposure_tag_units)'
    from normalized
    where exposure_time_source not in ('ExposureTime', 'none')
),

detectors as (
    select
        dicom_id,
        'DetectorType' as column_name,
        detector_type_raw as raw_value,
        detector_type as normalized_value,
        case when detector_type is null then 'not_a_defined_term' else 'spelling_mapped' end as rule,
        case
            when detector_type is null then
                'DetectorType ''' || detector_type_raw || ''' is not a DICOM enumerated value (seed detector_types)'
            else 'DetectorType ''' || detector_type_raw || ''' written as ' || detector_type
        end as reason
    from normalized
    where detector_type_raw is not null and (detector_type is null or detector_type != detector_type_raw)
),

exclusions as (
    select
        dicom_id,
        exclusion_attribute as column_name,
        exclusion_value as raw_value,
        cast(null as varchar) as normalized_value,
        'excluded_from_cohorts' as rule,
        exclusion_reason as reason
    from {{ ref('int_images_routed') }}
    where is_chest_radiograph = 0
),

unioned as (
    select * from measurements
    union all
    select * from views
    union all
    select * from exposures
    union all
    select * from detectors
    union all
    select * from exclusions
),

final as (
    select
        cast(dicom_id as text) as dicom_id,
        cast(column_name as text) as column_name,
        cast(raw_value as text) as raw_value,
        cast(normalized_value as text) as normalized_value,
        cast(rule as text) as rule,
        cast(reason as text) as reason
    from unioned
)

select * from final
