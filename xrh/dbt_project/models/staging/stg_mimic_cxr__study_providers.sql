with source as (
    select * from {{ source('raw', 'raw_mimic_cxr__provider_list') }}
),

renamed as (
    select
        study_id,
        ordering_provider_id,
        attending_provider_id,
        resident_provider_id
    from source
)

select * from renamed
