{#- One row per image with everything an experiment filters on: subject and demographics, the stay at study time, the
    CheXpert labels, the official split and the acquisition. Images of subjects missing from MIMIC-IV patients are kept
    (in_mimiciv = 0), never dropped. Images that are not projection chest radiographs are here too, flagged
    (is_chest_radiograph = 0, with the reason); experiment cohorts never take them. -#}
with acquisition as (
    select * from {{ ref('acquisition') }}
),

patients as (
    select * from {{ ref('stg_mimiciv_hosp__patients') }}
),

-- Race is recorded per admission: take the admission at study time, else the subject's most recent one.
admissions_ranked as (
    select
        subject_id,
        hadm_id,
        race,
        row_number() over (partition by subject_id order by admitted_at desc, hadm_id) as recency
    from {{ ref('stg_mimiciv_hosp__admissions') }}
),

final as (
    select
        acquisition.dicom_id,
        acquisition.subject_id,
        acquisition.study_id,
        case when patients.subject_id is not null then 1 else 0 end as in_mimiciv,
        patients.sex,
        patients.anchor_age,
        patients.anchor_year_group,
        coalesce(stay_admission.race, latest_admission.race) as race,
        stays.study_datetime,
        stays.hadm_id,
        stays.care_unit,
        stays.service,
        stays.department,
        stays.link_status,
        {%- for column in var('label_columns') %}
        coalesce(labels.{{ label_name(column) }}_label, 'unlabelled') as {{ label_name(column) }}_label,
        {%- endfor %}
        coalesce(labels.has_labels, 0) as has_labels,
        coalesce(labels.is_healthy, 0) as is_healthy,
        coalesce(labels.positive_diseases, 0) as positive_diseases,
        splits.official_split,
        acquisition.view_position,
        acquisition.view_position_source,
        acquisition.view_group,
        acquisition.projection,
        acquisition.is_portable,
        acquisition.kvp,
        acquisition.exposure_mas,
        acquisition.exposure_mas_source,
        acquisition.detector_type,
        acquisition.pixel_spacing_mm,
        acquisition.photometric_interpretation,
        acquisition.manufacturer,
        acquisition.manufacturer_model,
        acquisition.energy_group,
        acquisition.scanner_id,
        acquisition.dicom_path,
        acquisition.has_dicom_header,
        acquisition.is_chest_radiograph,
        acquisition.exclusion_reason
    from acquisition
    left join patients
        on acquisition.subject_id = patients.subject_id
    left join {{ ref('int_studies_linked') }} as stays
        on acquisition.study_id = stays.study_id
    left join admissions_ranked as stay_admission
        on stays.hadm_id = stay_admission.hadm_id
    left join admissions_ranked as latest_admission
        on acquisition.subject_id = latest_admission.subject_id
        and latest_admission.recency = 1
    left join {{ ref('int_study_labels_encoded') }} as labels
        on acquisition.study_id = labels.study_id
    left join {{ ref('stg_mimic_cxr_jpg__splits') }} as splits
        on acquisition.dicom_id = splits.dicom_id
)

select * from final
