"""The simulated DICOM files read back with pydicom and carry MIMIC-CXR's tags and missingness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from simulate.profiles import load_profiles
from tests.conftest import FILES


@pytest.fixture(scope="module")
def datasets(simulated):
    root, _ = simulated
    truth = pd.read_csv(root / "simulation_truth.csv.gz")
    records = pd.read_csv(root / FILES / "mimic-cxr/2.1.0/cxr-record-list.csv.gz")
    merged = truth.merge(records[["dicom_id", "path"]], on="dicom_id")
    return [(row, pydicom.dcmread(root / FILES / "mimic-cxr/2.1.0" / row.path)) for row in merged.itertuples()]


def test_every_file_is_dx_for_presentation_explicit_little_endian(datasets):
    for row, ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert ds.Modality == "DX" and ds.BodyPartExamined == "CHEST"
        assert str(ds.PatientID) == str(row.subject_id)
        assert ds.StudyDate.startswith("21") and len(ds.StudyTime.split(".")[0]) == 6


def test_pixels_match_the_header(datasets):
    for row, ds in datasets:
        pixels = ds.pixel_array
        assert pixels.shape == (ds.Rows, ds.Columns) == (row.rows, row.columns)
        assert pixels.dtype == np.uint16 and pixels.max() < 2**ds.BitsStored
        assert ds.PhotometricInterpretation == row.photometric
        assert ds.Rows != ds.Columns


def test_each_profile_writes_its_own_tags(datasets):
    profiles = load_profiles()
    for row, ds in datasets:
        writes = profiles[row.profile].writes
        assert ("KVP" in ds) == ("KVP" in writes)
        assert ("DetectorType" in ds) == ("DetectorType" in writes)
        assert ("ExposureInmAs" in ds) == ("ExposureInmAs" in writes)
        if "KVP" in ds:
            assert float(ds.KVP) == pytest.approx(row.kvp)
        if "Exposure" in ds:
            assert int(ds.Exposure) == round(row.mas)
        if "ExposureInmAs" in ds:
            assert float(ds.ExposureInmAs) == pytest.approx(row.mas)
        assert ds.Manufacturer == profiles[row.profile].manufacturer


def test_header_poor_unit_has_blank_view_and_no_codes(datasets):
    header_poor = [ds for row, ds in datasets if row.profile == "HP"]
    assert header_poor, "the fixture should include the header-poor unit"
    for ds in header_poor:
        assert ds.ViewPosition == "" and "ViewCodeSequence" not in ds and "KVP" not in ds and "DetectorType" not in ds


def test_view_codes_and_latin1_manufacturer(datasets):
    meanings = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}
    for _row, ds in datasets:
        if ds.ViewPosition:
            assert ds.ViewCodeSequence[0].CodeMeaning == meanings[ds.ViewPosition]
            assert ds.PatientOrientationCodeSequence[0].CodeMeaning in {"Erect", "Recumbent"}
        assert ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
    s120 = [ds for row, ds in datasets if row.profile == "S120"]
    assert s120 and all(ds.Manufacturer == "Röntgenwerk Nord" for ds in s120)
