with source as (
    select * from {{ source('raw', 'raw_mimic_cxr__record_list') }}
),

renamed as (
    select
        dicom_id,
        study_id,
        subject_id,
        path as dicom_path
    from source
)

select * from renamed
