{#- MIMIC-CXR-JPG label values as an explicit status: 1.0 positive, 0.0 negative, -1.0 uncertain, empty not
    mentioned; a study with no row in the label file at all is 'unlabelled' (never silently negative). -#}
{% macro label_status(value, has_label_row) -%}
    cast(case
        when not {{ has_label_row }} then 'unlabelled'
        when {{ value }} = 1 then 'positive'
        when {{ value }} = 0 then 'negative'
        when {{ value }} = -1 then 'uncertain'
        when {{ value }} is null then 'not_mentioned'
    end as text)
{%- endmacro %}

{% macro label_name(column) -%}
    {{ column | lower | replace(' ', '_') }}
{%- endmacro %}

{#- A label file of MIMIC-CXR-JPG staged: one row per study, label columns in snake_case, values as shipped
    (1.0, 0.0, -1.0, NULL). CheXpert and NegBio share the layout. -#}
{% macro staged_labels(source_table) -%}
with source as (
    select * from {{ source('raw', source_table) }}
),

renamed as (
    select
        study_id,
        subject_id,
        {%- for column in var('label_columns') %}
        "{{ column }}" as {{ label_name(column) }}{{ ',' if not loop.last }}
        {%- endfor %}
    from source
)

select * from renamed
{%- endmacro %}
