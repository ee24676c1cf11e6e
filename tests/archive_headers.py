"""DICOM files with the headers real archives write, built on a real chest radiograph's header.

The base is pydicom-data's ``RG1_UNCR.dcm`` (a Philips CR PA chest: MONOCHROME1, KVP 150, PixelSpacing 0\\0). Each
variant changes only the tags that public header tables of chest archives show written in other ways: "not recorded"
sentinels (0, 0\\0, blank and whitespace strings), exposure in other tags and units, view positions in full words,
lower case and other lateral names, and images that are not projection chest radiographs. The pixel data is replaced
by a small array so the files stay small; the header is otherwise the real one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

REAL_CHEST_CR = Path(get_testdata_file("RG1_UNCR.dcm"))


def _code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "R-10000", "SRT", meaning
    return item


def _view_code(meaning: str):
    return lambda ds: setattr(ds, "ViewCodeSequence", [_code_item(meaning)])


# variant name -> tag changes: keyword -> new value, None to remove the tag, or a function that edits the dataset
VARIANTS: dict[str, dict[str, object]] = {
    "as_shipped": {},  # RG1 itself: CR, KVP 150, Exposure 2 mAs, PixelSpacing 0\0
    "kvp_zero": {"KVP": "0", "Exposure": "0", "XRayTubeCurrent": 0},
    "kvp_negative": {"KVP": "-1"},
    "kvp_implausible": {"KVP": "1100"},
    "spacing_zero_imager_spacing_set": {"PixelSpacing": ["0", "0"], "ImagerPixelSpacing": ["0.143", "0.143"]},
    "exposure_in_uas": {"Exposure": None, "ExposureInuAs": 2500},
    "exposure_current_times_time": {"Exposure": None, "XRayTubeCurrent": 320, "ExposureTime": 10},
    "exposure_microamps_microseconds": {
        "Exposure": None,
        "ExposureTime": None,
        "XRayTubeCurrentInuA": 250000.0,
        "ExposureTimeInuS": 8000.0,
    },
    "view_full_word": {"ViewPosition": "POSTERO-ANTERIOR"},
    "view_lower_case": {"ViewPosition": "pa"},
    "view_left_lateral": {"ViewPosition": "LEFT LATERAL"},
    "view_lat": {"ViewPosition": "LAT"},
    "view_blank_with_code": {"ViewPosition": "", "ViewCodeSequence": _view_code("antero-posterior")},
    "view_whitespace_with_code": {"ViewPosition": "  ", "ViewCodeSequence": _view_code("left lateral")},
    "view_blank_portable": {"ViewPosition": "", "PerformedProcedureStepDescription": "CHEST (PORTABLE AP)"},
    "view_unknown": {"ViewPosition": "XYZ"},
    "detector_mixed_case": {"DetectorType": "Scintillator"},
    "detector_not_a_term": {"DetectorType": "INDIRECT"},
    "manufacturer_whitespace": {"Manufacturer": "   ", "ManufacturerModelName": ""},
    "not_chest_body_part": {"BodyPartExamined": "ABDOMEN"},
    "not_projection_modality": {"Modality": "CT"},
    "secondary_capture": {"ImageType": ["DERIVED", "SECONDARY"], "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"},
    "body_part_other_spelling": {"BodyPartExamined": "THORAX", "ViewPosition": "PA"},
    "no_kvp_no_view": {"KVP": None, "ViewPosition": None},
}


def archive_dataset(name: str, index: int) -> Dataset:
    """RG1's header with variant ``name`` applied, a unique SOP instance UID and an 8x8 pixel array."""
    ds = pydicom.dcmread(REAL_CHEST_CR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns on values real archives write (e.g. CS 'pa')
        for keyword, value in VARIANTS[name].items():
            if callable(value):
                value(ds)
            elif value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
    uid = f"{ds.SOPInstanceUID}.{index + 1}"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    return ds


def write_archive_files(folder: Path) -> dict[str, str]:
    """One file per variant under ``folder``; returns variant name -> its dicom_id (the SOP instance UID)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = {}
    for index, name in enumerate(VARIANTS):
        ds = archive_dataset(name, index)
        ds.save_as(folder / f"{name}.dcm", enforce_file_format=True)
        ids[name] = str(ds.SOPInstanceUID)
    return ids
