"""DX "For Presentation" DICOM files with the tags, coding and missingness of MIMIC-CXR's de-identified headers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
IMPLEMENTATION_CLASS_UID = "2.25.262006158217430853342467283393036514315"
IMPLEMENTATION_VERSION = "XRH_SIM_0_1"

# View codes (SNOMED-RT, DICOM CID 4010) by written ViewPosition; the header-poor unit writes none.
VIEW_CODES = {
    "PA": ("R-10214", "postero-anterior"),
    "AP": ("R-10206", "antero-posterior"),
    "LATERAL": ("R-10232", "lateral"),
    "LL": ("R-10236", "left lateral"),
}
ORIENTATION_CODES = {"Erect": "F-10440", "Recumbent": "F-10450"}
DEIDENTIFICATION_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)


def uid_from(*parts: object) -> str:
    """A deterministic ``2.25.<decimal>`` UID (ISO/IEC 9834-8) from a hash of ``parts``."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big") >> 1)


def _code(value: str, meaning: str, scheme: str = "SRT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


@dataclass(frozen=True)
class DxHeader:
    """What one image's header says. ``None`` for an optional tag means the unit does not write it."""

    dicom_id: str
    subject_id: int
    study_id: int
    sex: str
    acquired: datetime
    study_instance_uid: str
    procedure: str
    view_position: str
    orientation: str
    manufacturer: str
    model: str
    charset: str
    photometric: str
    bits_stored: int
    pixel_spacing_mm: float
    kvp: float | None
    detector_type: str | None
    exposure_mas: int | None
    exposure_time_ms: int | None
    tube_current_ma: int | None
    exposure_in_mas: float | None
    exposure_time_in_us: float | None
    source_to_detector_mm: float | None = None
    source_to_patient_mm: float | None = None
    magnification: float | None = None


def dx_dataset(header: DxHeader, pixels: np.ndarray) -> Dataset:
    """The dataset of one DX For Presentation image, with file meta (explicit VR little endian)."""
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D uint16 array, got {pixels.dtype} with shape {pixels.shape}")
    sop_instance_uid = uid_from("sop", header.dicom_id)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = header.charset
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_instance_uid
    date = header.acquired.strftime("%Y%m%d")
    time = header.acquired.strftime("%H%M%S.") + f"{header.acquired.microsecond // 1000:03d}"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AccessionNumber = ""
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = header.manufacturer
    ds.ReferringPhysicianName = ""
    ds.ProcedureCodeSequence = [_code(header.procedure.replace(" ", "")[:16], header.procedure, "XRH")]
    ds.PerformedProcedureStepDescription = header.procedure
    ds.ManufacturerModelName = header.model
    ds.PatientName = ""
    ds.PatientID = str(header.subject_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = header.sex
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Basic profile; clean descriptors; retain modified dates"
    ds.DeidentificationMethodCodeSequence = [_code(v, m, "DCM") for v, m in DEIDENTIFICATION_CODES]
    ds.BodyPartExamined = "CHEST"
    if header.kvp is not None:
        ds.KVP = f"{header.kvp:g}"
    if header.exposure_time_ms is not None:
        ds.ExposureTime = int(header.exposure_time_ms)
    if header.tube_current_ma is not None:
        ds.XRayTubeCurrent = int(header.tube_current_ma)
    if header.exposure_mas is not None:
        ds.Exposure = int(header.exposure_mas)
    if header.exposure_time_in_us is not None:
        ds.ExposureTimeInuS = f"{header.exposure_time_in_us:.1f}"
    if header.exposure_in_mas is not None:
        ds.ExposureInmAs = float(header.exposure_in_mas)
    if header.detector_type is not None:
        ds.DetectorType = header.detector_type
    if header.source_to_detector_mm is not None:
        ds.DistanceSourceToDetector = f"{header.source_to_detector_mm:g}"
    if header.source_to_patient_mm is not None:
        ds.DistanceSourceToPatient = f"{header.source_to_patient_mm:g}"
    if header.magnification is not None:
        ds.EstimatedRadiographicMagnificationFactor = f"{header.magnification:.4f}"
    spacing = f"{header.pixel_spacing_mm:.6g}"
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = uid_from("series", header.dicom_id)
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ViewPosition = header.view_position
    if header.view_position in VIEW_CODES:
        view = _code(*VIEW_CODES[header.view_position])
        view.ViewModifierCodeSequence = []
        ds.ViewCodeSequence = [view]
        ds.PatientOrientationCodeSequence = [_code(ORIENTATION_CODES[header.orientation], header.orientation)]
    ds.AnatomicRegionSequence = [_code("T-D3000", "Chest")]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = header.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [spacing, spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = header.bits_stored
    ds.HighBit = header.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = str(1 << (header.bits_stored - 1))
    ds.WindowWidth = str(1 << header.bits_stored)
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "INVERSE" if header.photometric == "MONOCHROME1" else "IDENTITY"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def dx_bytes(header: DxHeader, pixels: np.ndarray) -> bytes:
    """The encoded file (preamble, file meta, dataset)."""
    buffer = BytesIO()
    dcmwrite(buffer, dx_dataset(header, pixels), enforce_file_format=True)
    return buffer.getvalue()
