{#- One row per ingested DICOM header with its acquisition values normalised: measurements after the range checks,
    exposure and exposure time in one unit each, the resolved view, the detector type as a DICOM enumerated value, and
    whether the image is a projection chest radiograph. Each normalised value keeps its raw value beside it. -#}
with headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

measurements as (
    select
        dicom_id,
        max(case when tag = 'KVP' then raw_value end) as kvp_raw,
        max(case when tag = 'KVP' then normalized_value end) as kvp,
        max(case when tag = 'PixelSpacing' then normalized_value end) as pixel_spacing_mm,
        max(case when tag = 'ImagerPixelSpacing' then normalized_value end) as imager_pixel_spacing_mm,
        max(case when tag = 'PixelSpacing' then raw_value end) as pixel_spacing_raw,
        max(case when tag = 'ImagerPixelSpacing' then raw_value end) as imager_pixel_spacing_raw,
        max(case when tag = 'DistanceSourceToDetector' then normalized_value end) as source_to_detector_mm
    from {{ ref('int_header_measurements_normalized') }}
    group by dicom_id
),

detector_types as (
    select * from {{ ref('detector_types') }}
),

final as (
    select
        headers.dicom_id,
        cast(measurements.kvp as double) as kvp,
        cast(measurements.kvp_raw as double) as kvp_raw,
        exposure.exposure_mas,
        exposure.exposure_mas_source,
        exposure.exposure_time_ms,
        exposure.exposure_time_source,
        cast(coalesce(measurements.pixel_spacing_mm, measurements.imager_pixel_spacing_mm) as double)
            as pixel_spacing_mm,
        cast(coalesce(measurements.pixel_spacing_raw, measurements.imager_pixel_spacing_raw) as double)
            as pixel_spacing_raw,
        cast(measurements.source_to_detector_mm as double) as source_to_detector_mm,
        views.view_position,
        views.view_position_raw,
        views.view_position_source,
        detector_types.detector_type,
        headers.detector_type as detector_type_raw,
        routed.is_chest_radiograph,
        routed.exclusion_reason
    from headers
    left join measurements
        on headers.dicom_id = measurements.dicom_id
    left join {{ ref('int_images_exposure_derived') }} as exposure
        on headers.dicom_id = exposure.dicom_id
    left join {{ ref('int_images_view_resolved') }} as views
        on headers.dicom_id = views.dicom_id
    left join {{ ref('int_images_routed') }} as routed
        on headers.dicom_id = routed.dicom_id
    left join detector_types
        on upper(headers.detector_type) = detector_types.detector_type
)

select * from final
