{#- The original study's diagnostic summary: per energy group and finding, how many frontal images carry each label
    status (CheXpert). -#}
with images as (
    select dicom_id, study_id, energy_group from {{ ref('acquisition') }}
    where view_group = 'frontal'
),

labels as (
    select study_id, finding, label_status from {{ ref('study_labels') }}
    where labeler = 'chexpert'
),

final as (
    select
        images.energy_group,
        labels.finding,
        labels.label_status,
        count(*) as images
    from images
    inner join labels
        on images.study_id = labels.study_id
    group by images.energy_group, labels.finding, labels.label_status
)

select * from final
