{#- One row per image: how it was acquired. Images come from the MIMIC-CXR record list and from every ingested DICOM
    header (a folder ingested on its own has headers without record-list rows, a partial download the reverse). -#}
with records as (
    select * from {{ ref('stg_mimic_cxr__records') }}
),

headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

metadata as (
    select * from {{ ref('stg_mimic_cxr_jpg__metadata') }}
),

images as (
    select dicom_id, study_id, subject_id, dicom_path from records
    union
    select dicom_id, study_id, subject_id, dicom_path from headers
    where dicom_id not in (select dicom_id from records)
),

joined as (
    select
        images.dicom_id,
        images.study_id,
        images.subject_id,
        images.dicom_path,
        case when headers.dicom_id is not null then 1 else 0 end as has_dicom_header,
        coalesce(headers.view_position, metadata.view_position, '') as view_position,
        coalesce(headers.procedure_description, metadata.procedure_description) as procedure_description,
        headers.kvp,
        exposure.exposure_mas,
        coalesce(exposure.exposure_mas_source, 'none') as exposure_mas_source,
        headers.exposure_time_ms,
        headers.detector_type,
        headers.pixel_spacing_mm,
        coalesce(headers.image_rows, metadata.image_rows) as image_rows,
        coalesce(headers.image_columns, metadata.image_columns) as image_columns,
        headers.bits_stored,
        headers.photometric_interpretation,
        headers.manufacturer,
        headers.manufacturer_model,
        coalesce(energy.energy_group, 'unknown') as energy_group
    from images
    left join headers
        on images.dicom_id = headers.dicom_id
    left join metadata
        on images.dicom_id = metadata.dicom_id
    left join {{ ref('int_images_exposure_derived') }} as exposure
        on images.dicom_id = exposure.dicom_id
    left join {{ ref('int_images_energy_grouped') }} as energy
        on images.dicom_id = energy.dicom_id
),

final as (
    select
        joined.dicom_id,
        joined.study_id,
        joined.subject_id,
        joined.dicom_path,
        joined.has_dicom_header,
        joined.view_position,
        coalesce(views.view_group, 'unknown') as view_group,
        coalesce(views.projection, 'UNKNOWN') as projection,
        case when upper(coalesce(joined.procedure_description, '')) like '%PORTABLE%' then 1 else 0 end as is_portable,
        joined.kvp,
        joined.exposure_mas,
        joined.exposure_mas_source,
        joined.exposure_time_ms,
        joined.detector_type,
        joined.pixel_spacing_mm,
        joined.image_rows,
        joined.image_columns,
        -- Orientation-free matrix size, so a cassette turned to landscape stays the same scanner.
        case when joined.image_rows is not null then
            {{ greater_of('joined.image_rows', 'joined.image_columns') }} || 'x'
            || {{ lesser_of('joined.image_rows', 'joined.image_columns') }}
        end as matrix_family,
        joined.bits_stored,
        joined.photometric_interpretation,
        joined.manufacturer,
        joined.manufacturer_model,
        joined.energy_group,
        case when joined.has_dicom_header = 1 then
            lower(
                coalesce(joined.manufacturer, '?') || ' | ' || coalesce(joined.manufacturer_model, '?') || ' | '
                || coalesce(joined.detector_type, '?') || ' | '
                || coalesce(printf('%.3f', joined.pixel_spacing_mm), '?') || ' mm | '
                || coalesce(joined.photometric_interpretation, '?') || ' | '
                || coalesce({{ greater_of('joined.image_rows', 'joined.image_columns') }} || 'x'
                            || {{ lesser_of('joined.image_rows', 'joined.image_columns') }}, '?')
            )
        end as scanner_id
    from joined
    left join {{ ref('view_positions') }} as views
        on joined.view_position = views.view_position
)

select * from final
