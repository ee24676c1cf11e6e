-- Row-count reconciliation: every image of the record list and every ingested DICOM header appears in acquisition
-- exactly once, and acquisition holds nothing else.
with raw_images as (
    select dicom_id from {{ source('raw', 'raw_mimic_cxr__record_list') }}
    union
    select dicom_id from {{ source('raw', 'raw_dicom_headers') }}
),

counted as (
    select raw_images.dicom_id, count(acquisition.dicom_id) as rows_in_acquisition
    from raw_images
    left join {{ ref('acquisition') }} as acquisition
        on raw_images.dicom_id = acquisition.dicom_id
    group by raw_images.dicom_id
)

select dicom_id, rows_in_acquisition from counted where rows_in_acquisition != 1
union all
select 'acquisition has ' || (select count(*) from {{ ref('acquisition') }}) || ' rows for '
       || (select count(*) from raw_images) || ' raw images', 0
where (select count(*) from {{ ref('acquisition') }}) != (select count(*) from raw_images)
