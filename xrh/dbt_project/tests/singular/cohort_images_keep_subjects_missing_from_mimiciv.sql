-- Images of subjects absent from MIMIC-IV patients stay in cohort_images (flagged), never dropped by a join.
select acquisition.dicom_id
from {{ ref('acquisition') }} as acquisition
left join {{ ref('cohort_images') }} as cohort
    on acquisition.dicom_id = cohort.dicom_id
where cohort.dicom_id is null
