{#- Compile one declared cohort (var 'cohorts', see dbt_project.yml) into a select over cohort_images: the projection
    chest radiographs that pass every filter and have a label, minus, if asked, the images of patients who also appear
    in another label group, taken out of the larger group (the original study's rule). Each label gets its name from
    the declaration's label_names. -#}
{% macro cohort_select(name, definition) -%}
    with candidates as (
        select
            cast('{{ name }}' as text) as cohort_name,
            dicom_id,
            subject_id,
            study_id,
            cast({{ definition.label }} as integer) as label
        from {{ ref('cohort_images') }}
        where is_chest_radiograph = 1
          and {{ definition.filters | join('\n          and ') }}
    ),

    labelled as (
        select * from candidates where label is not null
    ),

    {% if definition.dedupe_subjects_from_larger_group %}
    group_sizes as (
        select label, count(distinct subject_id) as subjects from labelled group by label
    ),

    shared_subjects as (
        select subject_id from labelled group by subject_id having count(distinct label) > 1
    ),

    largest_group as (
        select label from group_sizes order by subjects desc, label limit 1
    ),

    final as (
        select labelled.*
        from labelled
        where not (
            labelled.subject_id in (select subject_id from shared_subjects)
            and labelled.label = (select label from largest_group)
        )
    )
    {% else %}
    final as (
        select * from labelled
    )
    {% endif %}

    select
        final.*,
        {%- if definition.label_names %}
        cast(case final.label
            {%- for label_name in definition.label_names %} when {{ loop.index0 }} then '{{ label_name }}'{% endfor %}
        end as text) as label_name
        {%- else %}
        cast(null as text) as label_name
        {%- endif %}
    from final
{%- endmacro %}
