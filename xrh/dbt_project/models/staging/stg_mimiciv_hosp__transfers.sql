with source as (
    select * from {{ source('raw', 'raw_mimiciv_hosp__transfers') }}
),

renamed as (
    select
        transfer_id,
        subject_id,
        hadm_id,
        eventtype as event_type,
        careunit as care_unit,
        intime as entered_at,
        outtime as left_at
    from source
)

select * from renamed
