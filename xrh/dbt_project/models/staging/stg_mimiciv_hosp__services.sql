with source as (
    select * from {{ source('raw', 'raw_mimiciv_hosp__services') }}
),

renamed as (
    select
        subject_id,
        hadm_id,
        transfertime as changed_at,
        prev_service as previous_service,
        curr_service as service
    from source
)

select * from renamed
