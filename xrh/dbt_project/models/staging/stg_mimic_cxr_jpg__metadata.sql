with source as (
    select * from {{ source('raw', 'raw_mimic_cxr_jpg__metadata') }}
),

renamed as (
    select
        dicom_id,
        study_id,
        subject_id,
        PerformedProcedureStepDescription as procedure_description,
        cast(coalesce(ViewPosition, '') as text) as view_position,
        Rows as image_rows,
        Columns as image_columns,
        -- StudyTime is a float that lost its leading zeros (80556.875 is 08:05:56.875): padded before parsing.
        {{ dicom_timestamp('StudyDate', 'StudyTime') }} as study_datetime,
        ProcedureCodeSequence_CodeMeaning as procedure_code_meaning,
        ViewCodeSequence_CodeMeaning as view_code_meaning,
        PatientOrientationCodeSequence_CodeMeaning as patient_orientation
    from source
)

select * from renamed
