{#- Whether each ingested image is a projection chest radiograph, by the seed image_routing_rules: for each attribute
    (modality, SOP class, body part, image type) a written value must match one of the attribute's accepted patterns.
    A blank attribute is no evidence either way. Images that fail stay in the raw tables and in acquisition, with the
    reason, but no cohort takes them. -#}
with headers as (
    select * from {{ ref('stg_dicom__headers') }}
),

attributes as (
    select dicom_id, 'modality' as attribute, modality as value from headers where modality is not null
    union all
    select dicom_id, 'sop_class_uid', sop_class_uid from headers where sop_class_uid is not null
    union all
    select dicom_id, 'body_part', body_part from headers where body_part is not null
    union all
    select dicom_id, 'image_type', image_type from headers where image_type is not null
),

rules as (
    select * from {{ ref('image_routing_rules') }}
),

failures as (
    select attributes.dicom_id, attributes.attribute, attributes.value
    from attributes
    where not exists (
        select 1 from rules
        where rules.attribute = attributes.attribute
            and attributes.value like rules.accepted_pattern
    )
),

-- One reason per image: the first failing attribute in a fixed order.
first_failure as (
    select
        dicom_id,
        attribute,
        value,
        row_number() over (
            partition by dicom_id
            order by case attribute
                when 'modality' then 1 when 'sop_class_uid' then 2 when 'body_part' then 3 else 4 end
        ) as failure_rank
    from failures
),

final as (
    select
        headers.dicom_id,
        cast(case when first_failure.dicom_id is null then 1 else 0 end as integer) as is_chest_radiograph,
        cast(first_failure.attribute as text) as exclusion_attribute,
        cast(first_failure.value as text) as exclusion_value,
        cast(case when first_failure.dicom_id is not null then
            first_failure.attribute || ' ''' || first_failure.value || ''' is not a projection chest radiograph''s'
            || ' (accepted: seed image_routing_rules); kept in the raw tables, left out of cohorts'
        end as text) as exclusion_reason
    from headers
    left join first_failure
        on headers.dicom_id = first_failure.dicom_id
        and first_failure.failure_rank = 1
)

select * from final
