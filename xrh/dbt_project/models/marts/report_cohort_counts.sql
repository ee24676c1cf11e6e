{#- Images and patients per experiment cohort and label, with the label's name: the report's first table. -#}
with members as (
    select * from {{ ref('experiment_cohorts') }}
),

final as (
    select
        cohort_name,
        label,
        label_name,
        count(*) as images,
        count(distinct subject_id) as patients
    from members
    group by cohort_name, label, label_name
)

select * from final
