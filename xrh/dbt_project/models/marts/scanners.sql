{#- One row per scanner signature: manufacturer, model, detector type, pixel spacing, photometric interpretation and
    matrix family. The scanner_id is the signature itself (lower case), so it is stable across rebuilds and releases. -#}
with acquisition as (
    select * from {{ ref('acquisition') }}
    where scanner_id is not null
),

final as (
    select
        scanner_id,
        min(manufacturer) as manufacturer,
        min(manufacturer_model) as manufacturer_model,
        min(detector_type) as detector_type,
        min(pixel_spacing_mm) as pixel_spacing_mm,
        min(photometric_interpretation) as photometric_interpretation,
        min(matrix_family) as matrix_family,
        count(*) as images,
        count(distinct study_id) as studies,
        count(distinct subject_id) as subjects,
        sum(is_portable) as portable_images,
        min(kvp) as kvp_min,
        max(kvp) as kvp_max,
        min(exposure_mas) as exposure_mas_min,
        max(exposure_mas) as exposure_mas_max
    from acquisition
    group by scanner_id
)

select * from final
