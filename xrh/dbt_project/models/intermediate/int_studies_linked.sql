{#- Each study linked to the hospital stay it was taken in. MIMIC-CXR dates carry the same per-patient shift as
    MIMIC-IV, so study times compare directly with stay times:
      admission: the subject's admission with admittime <= t <= dischtime (the latest one if they overlap);
      care unit: the subject's transfers row (not a discharge row) with intime <= t < outtime;
      service:   the last services row of that admission with transfertime <= t.
    The study time is the earliest image time of the study: DICOM StudyDate/StudyTime, or the metadata's. -#}
with studies as (
    select study_id, subject_id from {{ ref('stg_mimic_cxr__studies') }}
),

image_times as (
    select
        records.study_id,
        coalesce(headers.study_datetime, metadata.study_datetime) as study_datetime
    from {{ ref('stg_mimic_cxr__records') }} as records
    left join {{ ref('stg_dicom__headers') }} as headers
        on records.dicom_id = headers.dicom_id
    left join {{ ref('stg_mimic_cxr_jpg__metadata') }} as metadata
        on records.dicom_id = metadata.dicom_id
),

study_times as (
    select
        studies.study_id,
        studies.subject_id,
        cast(min(image_times.study_datetime) as text) as study_datetime
    from studies
    left join image_times
        on studies.study_id = image_times.study_id
    group by studies.study_id, studies.subject_id
),

admission_matches as (
    select
        study_times.study_id,
        admissions.hadm_id,
        admissions.admitted_at,
        row_number() over (
            partition by study_times.study_id order by admissions.admitted_at desc, admissions.hadm_id
        ) as match_rank
    from study_times
    inner join {{ ref('stg_mimiciv_hosp__admissions') }} as admissions
        on study_times.subject_id = admissions.subject_id
        and study_times.study_datetime >= admissions.admitted_at
        and study_times.study_datetime <= admissions.discharged_at
),

unit_matches as (
    select
        study_times.study_id,
        transfers.transfer_id,
        transfers.hadm_id,
        transfers.care_unit,
        transfers.entered_at,
        row_number() over (
            partition by study_times.study_id order by transfers.entered_at desc, transfers.transfer_id
        ) as match_rank
    from study_times
    inner join {{ ref('stg_mimiciv_hosp__transfers') }} as transfers
        on study_times.subject_id = transfers.subject_id
        and transfers.event_type != 'discharge'
        and study_times.study_datetime >= transfers.entered_at
        and study_times.study_datetime < transfers.left_at
),

stays as (
    select
        study_times.study_id,
        study_times.subject_id,
        study_times.study_datetime,
        cast(coalesce(admission_matches.hadm_id, unit_matches.hadm_id) as integer) as hadm_id,
        admission_matches.hadm_id as admission_hadm_id,
        admission_matches.admitted_at,
        unit_matches.transfer_id,
        unit_matches.care_unit,
        unit_matches.entered_at as unit_entered_at
    from study_times
    left join admission_matches
        on study_times.study_id = admission_matches.study_id
        and admission_matches.match_rank = 1
    left join unit_matches
        on study_times.study_id = unit_matches.study_id
        and unit_matches.match_rank = 1
),

service_matches as (
    select
        stays.study_id,
        services.service,
        row_number() over (partition by stays.study_id order by services.changed_at desc) as match_rank
    from stays
    inner join {{ ref('stg_mimiciv_hosp__services') }} as services
        on stays.hadm_id = services.hadm_id
        and services.changed_at <= stays.study_datetime
),

patients as (
    select subject_id from {{ ref('stg_mimiciv_hosp__patients') }}
),

final as (
    select
        stays.study_id,
        stays.subject_id,
        stays.study_datetime,
        stays.hadm_id,
        stays.transfer_id,
        stays.care_unit,
        service_matches.service,
        cast(case
            when stays.care_unit is not null then coalesce(departments.department, 'unknown')
            when stays.hadm_id is not null then 'ward'
            when patients.subject_id is not null and stays.study_datetime is not null then 'outpatient'
        end as text) as department,
        cast(case
            when stays.study_datetime is null then 'no study time'
            when patients.subject_id is null then 'subject not in MIMIC-IV'
            when stays.admission_hadm_id is not null then 'admission'
            when departments.department = 'ED' then 'ED stay'
            when stays.transfer_id is not null then 'care unit only'
            else 'no stay at study time'
        end as text) as link_status,
        cast({{ seconds_between('stays.admitted_at', 'stays.study_datetime') }} / 3600.0 as double) as hours_since_admission,
        cast({{ seconds_between('stays.unit_entered_at', 'stays.study_datetime') }} / 3600.0 as double) as hours_in_unit
    from stays
    left join service_matches
        on stays.study_id = service_matches.study_id
        and service_matches.match_rank = 1
    left join {{ ref('care_unit_departments') }} as departments
        on stays.care_unit = departments.care_unit
    left join patients
        on stays.subject_id = patients.subject_id
)

select * from final
