"""The simulated release has the file layout, headers and value formats of the PhysioNet releases (REFERENCE.md 1)."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FILES

HEADERS = {
    "mimiciv/3.1/hosp/patients.csv.gz": "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
    "mimiciv/3.1/hosp/admissions.csv.gz": (
        "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,admission_location,"
        "discharge_location,insurance,language,marital_status,race,edregtime,edouttime,hospital_expire_flag"
    ),
    "mimiciv/3.1/hosp/transfers.csv.gz": "subject_id,hadm_id,transfer_id,eventtype,careunit,intime,outtime",
    "mimiciv/3.1/hosp/services.csv.gz": "subject_id,hadm_id,transfertime,prev_service,curr_service",
    "mimiciv/3.1/hosp/provider.csv.gz": "provider_id",
    "mimic-cxr/2.1.0/cxr-record-list.csv.gz": "subject_id,study_id,dicom_id,path",
    "mimic-cxr/2.1.0/cxr-study-list.csv.gz": "subject_id,study_id,path",
    "mimic-cxr/2.1.0/cxr-provider-list.csv.gz": (
        "study_id,ordering_provider_id,attending_provider_id,resident_provider_id"
    ),
    "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-metadata.csv.gz": (
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,"
        "ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning"
    ),
    "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-split.csv.gz": "dicom_id,study_id,subject_id,split",
    "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-chexpert.csv.gz": (
        "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
        "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices"
    ),
}
HEADERS["mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-negbio.csv.gz"] = HEADERS[
    "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-chexpert.csv.gz"
]
TIMESTAMP = r"^21\d\d-\d\d-\d\d \d\d:\d\d:\d\d$"
DICOM_ID = r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$"


def read(root: Path, relative: str) -> pd.DataFrame:
    return pd.read_csv(root / FILES / relative, dtype=str, keep_default_na=False)


@pytest.mark.parametrize("relative", sorted(HEADERS))
def test_csv_headers(simulated, relative):
    root, _ = simulated
    with gzip.open(root / FILES / relative, "rt", encoding="utf-8") as handle:
        assert handle.readline().rstrip("\n") == HEADERS[relative]


@pytest.mark.parametrize("project", ["mimiciv/3.1", "mimic-cxr/2.1.0", "mimic-cxr-jpg/2.1.0"])
def test_sha256sums_verify_and_cover_every_file(simulated, project):
    root, _ = simulated
    folder = root / FILES / project
    lines = (folder / "SHA256SUMS.txt").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, relative = line.split(" ", 1)
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        listed[relative] = digest
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS.txt"}
    assert set(listed) == on_disk
    for relative, digest in listed.items():
        assert hashlib.sha256((folder / relative).read_bytes()).hexdigest() == digest


def test_patients_and_admissions_formats(simulated):
    root, _ = simulated
    patients = read(root, "mimiciv/3.1/hosp/patients.csv.gz")
    assert patients.subject_id.str.fullmatch(r"1\d{7}").all()
    assert set(patients.gender) <= {"M", "F"}
    assert patients.anchor_age.astype(int).between(18, 91).all()
    assert patients.anchor_year.astype(int).between(2100, 2200).all()
    assert set(patients.anchor_year_group) <= {
        "2008 - 2010",
        "2011 - 2013",
        "2014 - 2016",
        "2017 - 2019",
        "2020 - 2022",
    }
    assert patients.dod.str.fullmatch(r"(21\d\d-\d\d-\d\d)?").all()
    admissions = read(root, "mimiciv/3.1/hosp/admissions.csv.gz")
    assert admissions.hadm_id.str.fullmatch(r"2\d{7}").all()
    assert admissions.admittime.str.match(TIMESTAMP).all()
    assert (admissions.dischtime > admissions.admittime).all()
    assert set(admissions.hospital_expire_flag) <= {"0", "1"}
    assert admissions.admit_provider_id.str.fullmatch(r"P[0-9A-Z]{5}").all()
    assert (admissions.deathtime != "").sum() == (admissions.hospital_expire_flag == "1").sum()


def test_transfers_have_ed_only_visits_and_empty_discharge_rows(simulated):
    root, _ = simulated
    transfers = read(root, "mimiciv/3.1/hosp/transfers.csv.gz")
    assert set(transfers.eventtype) == {"ed", "admit", "transfer", "discharge"}
    assert ((transfers.eventtype == "ed") & (transfers.hadm_id == "")).any(), "ED-only visits have no hadm_id"
    discharge = transfers[transfers.eventtype == "discharge"]
    assert (discharge.careunit == "").all() and (discharge.outtime == "").all()
    assert transfers.transfer_id.is_unique
    services = read(root, "mimiciv/3.1/hosp/services.csv.gz")
    first = services.groupby("hadm_id").head(1)
    assert (first.prev_service == "").all()


def test_some_cxr_subjects_are_absent_from_patients(simulated):
    root, _ = simulated
    patients = set(read(root, "mimiciv/3.1/hosp/patients.csv.gz").subject_id)
    cxr_subjects = set(read(root, "mimic-cxr/2.1.0/cxr-record-list.csv.gz").subject_id)
    assert patients < cxr_subjects


def test_record_list_paths_follow_the_mimic_tree(simulated):
    root, summary = simulated
    records = read(root, "mimic-cxr/2.1.0/cxr-record-list.csv.gz")
    assert len(records) == summary.images
    assert records.dicom_id.str.fullmatch(DICOM_ID).all()
    assert records.study_id.str.fullmatch(r"5\d{7}").all()
    expected = (
        "files/p"
        + records.subject_id.str[:2]
        + "/p"
        + records.subject_id
        + "/s"
        + records.study_id
        + "/"
        + records.dicom_id
        + ".dcm"
    )
    assert (records.path == expected).all()
    assert all((root / FILES / "mimic-cxr/2.1.0" / p).is_file() for p in records.path)
    studies = read(root, "mimic-cxr/2.1.0/cxr-study-list.csv.gz")
    assert all(
        (root / FILES / "mimic-cxr/2.1.0" / p).read_text().lstrip().startswith("FINAL REPORT") for p in studies.path
    )
    per_study = records.groupby("study_id").size()
    assert per_study.between(1, 3).all()


def test_metadata_study_time_lost_its_leading_zeros(simulated):
    root, _ = simulated
    metadata = read(root, "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-metadata.csv.gz")
    assert metadata.StudyDate.str.fullmatch(r"21\d{6}").all()
    assert metadata.StudyTime.str.fullmatch(r"[1-9]?\d{1,5}\.\d{1,3}|0\.\d{1,3}").all()
    padded = metadata.StudyTime.str.split(".").str[0].str.zfill(6)
    assert padded.str[:2].astype(int).between(0, 23).all()
    assert set(metadata.ViewPosition) <= {"PA", "AP", "LATERAL", "LL", ""}
    blank = metadata[metadata.ViewPosition == ""]
    assert (blank.ViewCodeSequence_CodeMeaning == "").all()


def test_labels_use_the_chexpert_encoding_and_split_is_patient_disjoint(simulated):
    root, _ = simulated
    labels = read(root, "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-chexpert.csv.gz")
    values = set(labels.drop(columns=["subject_id", "study_id"]).to_numpy().ravel())
    assert values <= {"1.0", "0.0", "-1.0", ""}
    assert set(labels["No Finding"]) <= {"1.0", ""}
    split = read(root, "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-split.csv.gz")
    assert split.groupby("subject_id").split.nunique().max() == 1
    assert set(split.split) <= {"train", "validate", "test"}


def test_study_times_fall_inside_a_stay_of_the_subject(simulated):
    root, _ = simulated
    metadata = read(root, "mimic-cxr-jpg/2.1.0/mimic-cxr-2.0.0-metadata.csv.gz")
    transfers = read(root, "mimiciv/3.1/hosp/transfers.csv.gz")
    transfers = transfers[transfers.eventtype != "discharge"]
    padded = metadata.StudyTime.str.split(".").str[0].str.zfill(6)
    metadata["when"] = pd.to_datetime(metadata.StudyDate + padded, format="%Y%m%d%H%M%S")
    stays = transfers.assign(intime=pd.to_datetime(transfers.intime), outtime=pd.to_datetime(transfers.outtime))
    linked = metadata.merge(stays, on="subject_id")
    inside = linked[(linked.when >= linked.intime) & (linked.when < linked.outtime)]
    known_subjects = set(read(root, "mimiciv/3.1/hosp/patients.csv.gz").subject_id)
    expected = set(metadata[metadata.subject_id.isin(known_subjects)].dicom_id)
    assert set(inside.dicom_id) == expected
