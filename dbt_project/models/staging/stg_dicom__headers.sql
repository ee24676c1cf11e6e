{#- The typed header columns of every ingested DICOM file (the raw header bytes stay in the raw table). -#}
with source as (
    select * from {{ source('raw', 'raw_dicom_headers') }}
),

renamed as (
    select
        path as dicom_path,
        cast(coalesce(dicom_id, SOPInstanceUID) as text) as dicom_id,
        study_id,
        subject_id,
        file_size,
        TransferSyntaxUID as transfer_syntax_uid,
        SOPClassUID as sop_class_uid,
        SOPInstanceUID as sop_instance_uid,
        Modality as modality,
        {{ dicom_timestamp('StudyDate', 'StudyTime') }} as study_datetime,
        PerformedProcedureStepDescription as procedure_description,
        cast(coalesce(ViewPosition, '') as text) as view_position,
        ViewCodeSequence_CodeMeaning as view_code_meaning,
        PatientOrientationCodeSequence_CodeMeaning as patient_orientation,
        BodyPartExamined as body_part,
        Manufacturer as manufacturer,
        ManufacturerModelName as manufacturer_model,
        KVP as kvp,
        Exposure as exposure_mas_tag,
        ExposureInuAs as exposure_uas_tag,
        ExposureInmAs as exposure_in_mas_tag,
        ExposureTime as exposure_time_ms,
        ExposureTimeInuS as exposure_time_us,
        XRayTubeCurrent as tube_current_ma,
        XRayTubeCurrentInuA as tube_current_ua,
        DistanceSourceToDetector as source_to_detector_mm,
        Grid as grid,
        DetectorType as detector_type,
        cast(coalesce(PixelSpacing_row, ImagerPixelSpacing_row) as double) as pixel_spacing_mm,
        Rows as image_rows,
        Columns as image_columns,
        BitsStored as bits_stored,
        PhotometricInterpretation as photometric_interpretation
    from source
)

select * from renamed
