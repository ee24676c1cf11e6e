with source as (
    select * from {{ source('raw', 'raw_mimiciv_hosp__admissions') }}
),

renamed as (
    select
        hadm_id,
        subject_id,
        admittime as admitted_at,
        dischtime as discharged_at,
        deathtime as died_at,
        admission_type,
        admit_provider_id,
        admission_location,
        discharge_location,
        insurance,
        language,
        marital_status,
        race,
        edregtime as ed_registered_at,
        edouttime as ed_left_at,
        hospital_expire_flag as died_in_hospital
    from source
)

select * from renamed
