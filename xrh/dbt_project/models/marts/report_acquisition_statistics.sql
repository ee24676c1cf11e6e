{#- The original study's acquisition statistics: images and patients by view, kVp group and detector type. kVp is
    grouped to the nearest 10 kV (a measured float, never compared for equality); projection chest radiographs only. -#}
with acquisition as (
    select
        coalesce(view_position, '(unknown)') as view_position,
        case when kvp is null then '(missing)' else cast(cast(round(kvp / 10.0) * 10 as integer) as varchar) end
            as kvp_group,
        coalesce(detector_type, '(missing)') as detector_type,
        subject_id
    from {{ ref('acquisition') }}
    where is_chest_radiograph = 1
),

totals as (
    select count(*) as all_images from acquisition
),

final as (
    select
        view_position,
        kvp_group,
        detector_type,
        count(*) as images,
        count(distinct subject_id) as patients,
        round(100.0 * count(*) / max(totals.all_images), 2) as percent_of_images
    from acquisition
    cross join totals
    group by view_position, kvp_group, detector_type
)

select * from final
