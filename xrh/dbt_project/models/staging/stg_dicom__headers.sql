{#- The typed header columns of every ingested DICOM file, renamed; text values trimmed, blank ones NULL. Numbers are
    as written (sentinels such as KVP = 0 included): int_header_measurements_normalized judges them. The raw header
    bytes stay in the raw table. -#}
with source as (
    select * from {{ source('raw', 'raw_dicom_headers') }}
),

renamed as (
    select
        path as dicom_path,
        cast(dicom_id as text) as dicom_id,
        study_id,
        subject_id,
        file_size,
        TransferSyntaxUID as transfer_syntax_uid,
        {{ blank_to_null('SOPClassUID') }} as sop_class_uid,
        SOPInstanceUID as sop_instance_uid,
        {{ blank_to_null('upper(Modality)') }} as modality,
        {{ blank_to_null('upper(ImageType)') }} as image_type,
        {{ dicom_timestamp('StudyDate', 'StudyTime') }} as study_datetime,
        {{ blank_to_null('PerformedProcedureStepDescription') }} as procedure_description,
        {{ blank_to_null('ViewPosition') }} as view_position,
        {{ blank_to_null('ViewCodeSequence_CodeMeaning') }} as view_code_meaning,
        {{ blank_to_null('PatientOrientationCodeSequence_CodeMeaning') }} as patient_orientation,
        {{ blank_to_null('upper(BodyPartExamined)') }} as body_part,
        {{ blank_to_null('AnatomicRegionSequence_CodeMeaning') }} as anatomic_region,
        {{ blank_to_null('Manufacturer') }} as manufacturer,
        {{ blank_to_null('ManufacturerModelName') }} as manufacturer_model,
        KVP as kvp,
        Exposure as exposure_mas_tag,
        ExposureInuAs as exposure_uas_tag,
        ExposureInmAs as exposure_in_mas_tag,
        ExposureTime as exposure_time_ms_tag,
        ExposureTimeInuS as exposure_time_us_tag,
        XRayTubeCurrent as tube_current_ma_tag,
        XRayTubeCurrentInuA as tube_current_ua_tag,
        DistanceSourceToDetector as source_to_detector_mm,
        {{ blank_to_null('Grid') }} as grid,
        {{ blank_to_null('DetectorType') }} as detector_type,
        PixelSpacing_row as pixel_spacing_row_mm,
        ImagerPixelSpacing_row as imager_pixel_spacing_row_mm,
        Rows as image_rows,
        Columns as image_columns,
        BitsStored as bits_stored,
        {{ blank_to_null('upper(PhotometricInterpretation)') }} as photometric_interpretation
    from source
)

select * from renamed
