select
    path as file_path,
    file_size,
    reason
from {{ source('raw', 'raw_dicom_rejects') }}
