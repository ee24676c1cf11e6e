with source as (
    select * from {{ source('raw', 'raw_mimic_cxr__study_list') }}
),

renamed as (
    select
        study_id,
        subject_id,
        path as report_path
    from source
)

select * from renamed
