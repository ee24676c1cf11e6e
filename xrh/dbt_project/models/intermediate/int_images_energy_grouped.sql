{#- Each image's energy group from the rules seed (first matching rule by priority) over the normalised kVp, detector
    type and view; 'other' when kVp and detector type are known but no rule matches, 'unknown' when either is missing
    (a "not recorded" sentinel such as KVP = 0 counts as missing). -#}
with headers as (
    select dicom_id, detector_type, view_position, kvp from {{ ref('int_images_normalized') }}
),

rules as (
    select * from {{ ref('energy_group_rules') }}
),

matches as (
    select
        headers.dicom_id,
        rules.energy_group,
        row_number() over (partition by headers.dicom_id order by rules.priority) as match_rank
    from headers
    inner join rules
        on headers.detector_type = rules.detector_type
        and headers.view_position = rules.view_position
        and headers.kvp between rules.kvp_min and rules.kvp_max
),

final as (
    select
        headers.dicom_id,
        cast(case
            when matches.energy_group is not null then matches.energy_group
            when headers.kvp is null or headers.detector_type is null then 'unknown'
            else 'other'
        end as text) as energy_group
    from headers
    left join matches
        on headers.dicom_id = matches.dicom_id
        and matches.match_rank = 1
)

select * from final
