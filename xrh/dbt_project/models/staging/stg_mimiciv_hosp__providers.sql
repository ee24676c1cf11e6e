select provider_id from {{ source('raw', 'raw_mimiciv_hosp__provider') }}
