{#- Each MIMIC-CXR study with the admission, care unit, service and department at the time it was taken, or why it
    could not be linked (link_status). -#}
select
    study_id,
    subject_id,
    study_datetime,
    hadm_id,
    transfer_id,
    care_unit,
    service,
    department,
    link_status,
    hours_since_admission,
    hours_in_unit
from {{ ref('int_studies_linked') }}
