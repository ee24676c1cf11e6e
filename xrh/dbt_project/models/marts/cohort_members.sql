{#- Every image of every experiment cohort with its label and label name and every cohort_images column, split or
    not: what training, feature extraction and harmonization read. -#}
with members as (
    select cohort_name, dicom_id, label, label_name from {{ ref('experiment_cohorts') }}
),

final as (
    select
        members.cohort_name,
        members.label,
        members.label_name,
        images.*
    from members
    inner join {{ ref('cohort_images') }} as images
        on members.dicom_id = images.dicom_id
)

select * from final
