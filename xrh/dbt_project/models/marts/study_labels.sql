{#- Every study's labels from both labelers in long form: one row per study, labeler and finding, with the value as
    shipped and its explicit status. -#}
{%- set labelers = {'chexpert': 'stg_mimic_cxr_jpg__chexpert_labels', 'negbio': 'stg_mimic_cxr_jpg__negbio_labels'} %}
with studies as (
    select study_id, subject_id from {{ ref('stg_mimic_cxr__studies') }}
),

{% for labeler, model in labelers.items() %}
{{ labeler }}_long as (
    {%- for column in var('label_columns') %}
    select
        studies.study_id,
        studies.subject_id,
        '{{ labeler }}' as labeler,
        '{{ column }}' as finding,
        labels.{{ label_name(column) }} as label_value,
        {{ label_status('labels.' ~ label_name(column), 'labels.study_id is not null') }} as label_status
    from studies
    left join {{ ref(model) }} as labels
        on studies.study_id = labels.study_id
    {{ 'union all' if not loop.last }}
    {%- endfor %}
),
{% endfor %}

final as (
    select * from chexpert_long
    union all
    select * from negbio_long
)

select * from final
