{#- One row per image: how it was acquired. Images come from the MIMIC-CXR record list and from every ingested DICOM
    header (a folder ingested on its own has headers without record-list rows, a partial download the reverse).
    Acquisition values are the normalised ones (int_images_normalized); where normalisation changed a value, the raw
    value stands beside it (kvp_raw, view_position_raw, ...) and the data_quality mart says which rule did it. -#}
with records as (
    select * from {{ ref('stg_mimic_cxr__records') }}
),

headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

metadata as (
    select * from {{ ref('stg_mimic_cxr_jpg__metadata') }}
),

view_spellings as (
    select * from {{ ref('int_view_position_spellings') }}
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
        -- Without a header, MIMIC-CXR-JPG's metadata (read from the same headers) is the only source of the view.
        cast(coalesce(normalized.view_position, metadata_views.view_position) as text) as view_position,
        case when headers.dicom_id is not null then normalized.view_position_raw else metadata.view_position end
            as view_position_raw,
        cast(case
            when headers.dicom_id is not null then normalized.view_position_source
            when metadata_views.view_position is not null then 'mimic-cxr-jpg metadata'
            else 'none'
        end as text) as view_position_source,
        coalesce(headers.procedure_description, metadata.procedure_description) as procedure_description,
        normalized.kvp,
        normalized.kvp_raw,
        normalized.exposure_mas,
        coalesce(normalized.exposure_mas_source, 'none') as exposure_mas_source,
        normalized.exposure_time_ms,
        coalesce(normalized.exposure_time_source, 'none') as exposure_time_source,
        normalized.detector_type,
        normalized.detector_type_raw,
        normalized.pixel_spacing_mm,
        normalized.pixel_spacing_raw,
        coalesce(headers.image_rows, metadata.image_rows) as image_rows,
        coalesce(headers.image_columns, metadata.image_columns) as image_columns,
        headers.bits_stored,
        headers.photometric_interpretation,
        headers.manufacturer,
        headers.manufacturer_model,
        cast(coalesce(normalized.is_chest_radiograph, 1) as integer) as is_chest_radiograph,
        normalized.exclusion_reason,
        coalesce(energy.energy_group, 'unknown') as energy_group
    from images
    left join headers
        on images.dicom_id = headers.dicom_id
    left join {{ ref('int_images_normalized') }} as normalized
        on images.dicom_id = normalized.dicom_id
    left join metadata
        on images.dicom_id = metadata.dicom_id
    left join view_spellings as metadata_views
        on upper(metadata.view_position) = metadata_views.spelling
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
        joined.view_position_raw,
        joined.view_position_source,
        cast(coalesce(views.view_group, 'unknown') as text) as view_group,
        cast(coalesce(views.projection, 'UNKNOWN') as text) as projection,
        case when upper(coalesce(joined.procedure_description, '')) like '%PORTABLE%' then 1 else 0 end as is_portable,
        joined.kvp,
        joined.kvp_raw,
        joined.exposure_mas,
        joined.exposure_mas_source,
        joined.exposure_time_ms,
        joined.exposure_time_source,
        joined.detector_type,
        joined.detector_type_raw,
        joined.pixel_spacing_mm,
        joined.pixel_spacing_raw,
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
        joined.is_chest_radiograph,
        joined.exclusion_reason,
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
