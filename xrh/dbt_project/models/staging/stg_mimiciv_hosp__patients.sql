with source as (
    select * from {{ source('raw', 'raw_mimiciv_hosp__patients') }}
),

renamed as (
    select
        subject_id,
        gender as sex,
        anchor_age,
        anchor_year,
        anchor_year_group,
        dod as date_of_death
    from source
)

select * from renamed
