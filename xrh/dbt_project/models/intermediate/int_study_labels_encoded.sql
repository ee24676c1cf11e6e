{#- One row per study: each CheXpert label as an explicit status, whether the study is healthy (a label row exists
    and no disease is positive or uncertain; a disease not mentioned counts as negative), and how many diseases are
    positive. -#}
with studies as (
    select study_id, subject_id from {{ ref('stg_mimic_cxr__studies') }}
),

labels as (
    select * from {{ ref('stg_mimic_cxr_jpg__chexpert_labels') }}
),

encoded as (
    select
        studies.study_id,
        studies.subject_id,
        cast(case when labels.study_id is not null then 1 else 0 end as integer) as has_labels,
        {%- for column in var('label_columns') %}
        {{ label_status('labels.' ~ label_name(column), 'labels.study_id is not null') }} as {{ label_name(column) }}_label,
        {%- endfor %}
        cast(case
            when labels.study_id is null then 0
            when {% for column in var('disease_columns') -%}
                coalesce(labels.{{ label_name(column) }}, 0) = 0{{ ' and ' if not loop.last }}
                {%- endfor %} then 1
            else 0
        end as integer) as is_healthy,
        cast({% for column in var('disease_columns') -%}
            case when labels.{{ label_name(column) }} = 1 then 1 else 0 end{{ ' + ' if not loop.last }}
            {%- endfor %} as integer) as positive_diseases
    from studies
    left join labels
        on studies.study_id = labels.study_id
)

select * from encoded
