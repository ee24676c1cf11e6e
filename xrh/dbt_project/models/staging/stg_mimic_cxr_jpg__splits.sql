with source as (
    select * from {{ source('raw', 'raw_mimic_cxr_jpg__split') }}
),

renamed as (
    select
        dicom_id,
        study_id,
        subject_id,
        split as official_split
    from source
)

select * from renamed
