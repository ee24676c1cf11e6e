{#- Exposure in mAs from whichever tags an image has, most precise first, with the tag it came from:
    ExposureInuAs / 1000 (0018,1153), ExposureInmAs (0018,9332), Exposure (0018,1152, an integer string),
    XRayTubeCurrent x ExposureTime / 1000 (mA x ms). -#}
with headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

derived as (
    select
        dicom_id,
        cast(case
            when exposure_uas_tag is not null then exposure_uas_tag / 1000.0
            when exposure_in_mas_tag is not null then exposure_in_mas_tag
            when exposure_mas_tag is not null then exposure_mas_tag
            when tube_current_ma is not null and exposure_time_ms is not null
                then tube_current_ma * exposure_time_ms / 1000.0
        end as double) as exposure_mas,
        cast(case
            when exposure_uas_tag is not null then 'ExposureInuAs'
            when exposure_in_mas_tag is not null then 'ExposureInmAs'
            when exposure_mas_tag is not null then 'Exposure'
            when tube_current_ma is not null and exposure_time_ms is not null then 'XRayTubeCurrent x ExposureTime'
            else 'none'
        end as text) as exposure_mas_source
    from headers
)

select * from derived
