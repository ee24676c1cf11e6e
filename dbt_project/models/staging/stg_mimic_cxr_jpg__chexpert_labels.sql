{#- One row per study; label columns renamed to snake_case, values as shipped (1.0, 0.0, -1.0, NULL). -#}
with source as (
    select * from {{ source('raw', 'raw_mimic_cxr_jpg__chexpert') }}
),

renamed as (
    select
        study_id,
        subject_id,
        {%- for column in var('label_columns') %}
        "{{ column }}" as {{ column | lower | replace(' ', '_') }}{{ ',' if not loop.last }}
        {%- endfor %}
    from source
)

select * from renamed
