"""The simulated population: patients, hospital stays, chest X-ray studies, their findings, labels and images.

Everything here is tables; no pixels. The structure follows MIMIC-IV v3.1 hosp and MIMIC-CXR v2.1.0 (REFERENCE.md
section 1): 8-digit subject ids starting with 1, study ids starting with 5, 40-hex dicom ids in five groups, ED stays as
``transfers`` rows with ``eventtype = 'ed'`` (empty ``hadm_id`` when the patient went home), discharge rows with empty
care unit, shifted dates in the 22nd century. Each study is taken on one scanner profile; portable units work during
admissions, fixed rooms in the emergency department, and each study's time lies inside the stay it belongs to, so that
the warehouse can link studies to admissions, care units and services. Inpatients are sicker than ED patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from simulate.phantom import FINDINGS, random_anatomy
from simulate.profiles import ScannerProfile

ANCHOR_YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022")
ANCHOR_YEAR_GROUP_WEIGHTS = (0.2, 0.4, 0.33, 0.07, 0.0)  # MIMIC-CXR covers 2011-2016
SHARE_ABSENT_FROM_MIMIC_IV = 0.05  # 3,511 of 65,379 MIMIC-CXR subjects have no MIMIC-IV patients row
SHARE_STUDIES_WITHOUT_LABELS = 0.004
OFFICIAL_SPLIT_SHARES = {"validate": 2_991 / 377_110, "test": 5_159 / 377_110}

ICU_UNITS = {
    "Medical Intensive Care Unit (MICU)": "MED",
    "Surgical Intensive Care Unit (SICU)": "SURG",
    "Coronary Care Unit (CCU)": "CMED",
    "Cardiac Vascular Intensive Care Unit (CVICU)": "CSURG",
    "Trauma SICU (TSICU)": "TRAUM",
}
WARD_UNITS = {
    "Med/Surg": "MED",
    "Medicine": "MED",
    "Medicine/Cardiology": "CMED",
    "Hematology/Oncology": "OMED",
    "Neurology": "NMED",
    "Surgery/Trauma": "TRAUM",
    "Cardiac Surgery": "CSURG",
    "Vascular": "VSURG",
}
RACES = (
    ("WHITE", 0.62),
    ("BLACK/AFRICAN AMERICAN", 0.16),
    ("HISPANIC/LATINO - PUERTO RICAN", 0.04),
    ("HISPANIC OR LATINO", 0.03),
    ("ASIAN", 0.04),
    ("ASIAN - CHINESE", 0.02),
    ("OTHER", 0.04),
    ("UNKNOWN", 0.05),
)
INSURANCE = (("Medicare", 0.45), ("Private", 0.25), ("Medicaid", 0.18), ("Other", 0.12))
LANGUAGES = (("English", 0.88), ("Spanish", 0.05), ("Russian", 0.02), ("Portuguese", 0.02), ("Chinese", 0.03))
MARITAL = (("MARRIED", 0.4), ("SINGLE", 0.33), ("WIDOWED", 0.13), ("DIVORCED", 0.08), ("", 0.06))
EMERGENCY_ADMISSION_TYPES = (("EW EMER.", 0.6), ("URGENT", 0.12), ("OBSERVATION ADMIT", 0.15), ("EU OBSERVATION", 0.13))
DIRECT_ADMISSION_TYPES = (("ELECTIVE", 0.4), ("SURGICAL SAME DAY ADMISSION", 0.3), ("DIRECT EMER.", 0.3))

# Probability that a finding is present on a study, by where the study was taken. Portable (inpatient) films come from
# much sicker patients, the confounder that makes acquisition predict disease on the real data.
PREVALENCE = {
    "inpatient": {
        "atelectasis": 0.30,
        "cardiomegaly": 0.25,
        "consolidation": 0.10,
        "edema": 0.18,
        "enlarged_cardiomediastinum": 0.05,
        "fracture": 0.02,
        "lung_lesion": 0.03,
        "pleural_effusion": 0.33,
        "pleural_other": 0.02,
        "pneumonia": 0.09,
        "pneumothorax": 0.05,
        "support_devices": 0.45,
    },
    "emergency": {
        "atelectasis": 0.08,
        "cardiomegaly": 0.10,
        "consolidation": 0.04,
        "edema": 0.04,
        "enlarged_cardiomediastinum": 0.02,
        "fracture": 0.02,
        "lung_lesion": 0.03,
        "pleural_effusion": 0.07,
        "pleural_other": 0.01,
        "pneumonia": 0.05,
        "pneumothorax": 0.01,
        "support_devices": 0.04,
    },
}
# Share of healthy patients: none of their studies shows a finding.
SHARE_HEALTHY = {"inpatient": 0.15, "emergency": 0.45}

# CheXpert label columns, in file order, with the findings that make each positive.
LABEL_COLUMNS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
LABEL_FINDINGS = {
    "Atelectasis": ("atelectasis",),
    "Cardiomegaly": ("cardiomegaly",),
    "Consolidation": ("consolidation",),
    "Edema": ("edema",),
    "Enlarged Cardiomediastinum": ("enlarged_cardiomediastinum",),
    "Fracture": ("fracture",),
    "Lung Lesion": ("lung_lesion",),
    "Lung Opacity": ("consolidation", "pneumonia", "edema", "atelectasis", "lung_lesion"),
    "Pleural Effusion": ("pleural_effusion",),
    "Pleural Other": ("pleural_other",),
    "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",),
    "Support Devices": ("support_devices",),
}
# How reports speak of a finding: share of present findings reported as uncertain, and share of absent findings that
# the report explicitly negates (the rest are not mentioned, an empty cell).
UNCERTAIN_WHEN_PRESENT = {"Pneumonia": 0.5, "Atelectasis": 0.2, "Consolidation": 0.2, "Edema": 0.15}
NEGATED_WHEN_ABSENT = {
    "Pleural Effusion": 0.45,
    "Pneumothorax": 0.45,
    "Consolidation": 0.35,
    "Pneumonia": 0.15,
    "Edema": 0.2,
    "Cardiomegaly": 0.2,
    "Enlarged Cardiomediastinum": 0.1,
    "Lung Opacity": 0.05,
    "Fracture": 0.03,
}
UNCERTAIN_WHEN_ABSENT = {"Atelectasis": 0.03, "Pneumonia": 0.03, "Lung Opacity": 0.02}


def timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Stay:
    """One hospital visit: an ED stay, an admission, or both (ED first)."""

    via_ed: bool
    hadm_id: int | None
    ed_in: datetime | None = None
    ed_out: datetime | None = None
    admittime: datetime | None = None
    dischtime: datetime | None = None
    units: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    died: bool = False


@dataclass
class Study:
    subject_id: int
    study_id: int
    profile: str
    study_datetime: datetime
    findings: frozenset[str]
    finding_seed: int
    labels: dict[str, str]
    image_ids: list[str] = field(default_factory=list)


@dataclass
class Image:
    dicom_id: str
    subject_id: int
    study_id: int
    profile: str
    view_position: str
    projection: str
    kvp: float
    mas: float
    exposure_time_ms: float
    landscape: bool


@dataclass
class Population:
    patients: list[dict]
    admissions: list[dict]
    transfers: list[dict]
    services: list[dict]
    providers: list[str]
    absent_subjects: set[int]
    subjects: dict[int, dict]  # subject_id -> sex, anatomy seed, split
    studies: list[Study]
    images: list[Image]
    study_providers: dict[int, tuple[str, str, str]]


def _choice(rng: np.random.Generator, weighted: tuple[tuple[object, float], ...]) -> object:
    values, weights = zip(*weighted, strict=False)
    weights = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=weights / weights.sum()))]


def _unique_ids(rng: np.random.Generator, count: int, low: int, high: int) -> list[int]:
    """``count`` distinct integers in ``[low, high)``, in random order."""
    chosen: set[int] = set()
    out: list[int] = []
    while len(out) < count:
        for value in rng.integers(low, high, size=count - len(out)):
            if int(value) not in chosen:
                chosen.add(int(value))
                out.append(int(value))
    return out


def dicom_id(rng: np.random.Generator) -> str:
    """Five groups of eight lowercase hex digits joined by '-', like MIMIC-CXR's dicom_id."""
    return "-".join(f"{int(v):08x}" for v in rng.integers(0, 2**32, size=5))


def _provider_id(rng: np.random.Generator) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "P" + "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), size=5))


def report_labels(rng: np.random.Generator, findings: frozenset[str]) -> dict[str, str]:
    """What a labeler reads from the report: '1.0', '0.0', '-1.0' or '' (not mentioned) per CheXpert column."""
    labels: dict[str, str] = {}
    for column, causes in LABEL_FINDINGS.items():
        if any(cause in findings for cause in causes):
            labels[column] = "-1.0" if rng.random() < UNCERTAIN_WHEN_PRESENT.get(column, 0.08) else "1.0"
        else:
            draw = rng.random()
            if draw < NEGATED_WHEN_ABSENT.get(column, 0.02):
                labels[column] = "0.0"
            elif draw < NEGATED_WHEN_ABSENT.get(column, 0.02) + UNCERTAIN_WHEN_ABSENT.get(column, 0.0):
                labels[column] = "-1.0"
            else:
                labels[column] = ""
    pathology = [c for c in LABEL_FINDINGS if c != "Support Devices" and labels[c] in ("1.0", "-1.0")]
    labels["No Finding"] = "" if pathology else "1.0"
    return {column: labels[column] for column in LABEL_COLUMNS}


def negbio_labels(rng: np.random.Generator, chexpert: dict[str, str]) -> dict[str, str]:
    """NegBio's labels: the same report read by another labeler, disagreeing on a few percent of mentions."""
    out = dict(chexpert)
    for column, value in chexpert.items():
        if column == "No Finding" or rng.random() > 0.03:
            continue
        out[column] = {"1.0": "-1.0", "-1.0": "1.0", "0.0": "", "": ""}[value]
    pathology = [c for c in LABEL_FINDINGS if c != "Support Devices" and out[c] in ("1.0", "-1.0")]
    out["No Finding"] = "" if pathology else "1.0"
    return out


def _draw_mas(rng: np.random.Generator, mean: float, sd: float, thickness_factor: float) -> float:
    sigma2 = np.log1p((sd / mean) ** 2)
    mas = rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2)) * thickness_factor
    return float(np.clip(mas, 0.3, 400.0))


def build_population(n_patients: int, profiles: dict[str, ScannerProfile], rng: np.random.Generator) -> Population:
    """Draw ``n_patients`` subjects with their stays, studies, findings, labels and images."""
    if n_patients < 1:
        raise ValueError(f"need at least one patient, got {n_patients}")
    profile_names = tuple(profiles)
    profile_weights = np.array([profiles[name].study_share for name in profile_names])
    subject_ids = sorted(_unique_ids(rng, n_patients, 10_000_000, 20_000_000))
    n_absent = int(round(n_patients * SHARE_ABSENT_FROM_MIMIC_IV)) if n_patients >= 20 else 0
    absent = set(int(s) for s in rng.choice(subject_ids, size=n_absent, replace=False)) if n_absent else set()
    providers = sorted({_provider_id(rng) for _ in range(max(20, n_patients // 3))})
    hadm_pool = iter(_unique_ids(rng, n_patients * 12, 20_000_000, 30_000_000))
    transfer_pool = iter(_unique_ids(rng, n_patients * 60, 30_000_000, 40_000_000))
    study_pool = iter(_unique_ids(rng, n_patients * 12, 50_000_000, 60_000_000))

    patients, admissions, transfers, services = [], [], [], []
    subjects: dict[int, dict] = {}
    studies: list[Study] = []
    images: list[Image] = []
    study_providers: dict[int, tuple[str, str, str]] = {}
    split_draws = rng.random(n_patients)

    for index, subject_id in enumerate(subject_ids):
        sex = "M" if rng.random() < 0.52 else "F"
        age = int(np.clip(rng.normal(62, 17), 18, 95))
        anchor_age = 91 if age > 89 else age
        anchor_year = int(rng.integers(2110, 2190))
        group = str(_choice(rng, tuple(zip(ANCHOR_YEAR_GROUPS, ANCHOR_YEAR_GROUP_WEIGHTS, strict=False))))
        race = str(_choice(rng, RACES))
        demographics = {
            "insurance": str(_choice(rng, INSURANCE)),
            "language": str(_choice(rng, LANGUAGES)),
            "marital_status": str(_choice(rng, MARITAL)),
            "race": race,
        }
        anatomy_seed = int(rng.integers(2**31))
        anatomy = random_anatomy(np.random.default_rng(anatomy_seed), sex)
        split = (
            "test"
            if split_draws[index] < OFFICIAL_SPLIT_SHARES["test"]
            else ("validate" if split_draws[index] < sum(OFFICIAL_SPLIT_SHARES.values()) else "train")
        )
        subjects[subject_id] = {"sex": sex, "anatomy_seed": anatomy_seed, "split": split}
        cardiomegaly = rng.random() < 0.2  # a chronic finding: the same patient keeps it
        healthy = {setting: rng.random() < share for setting, share in SHARE_HEALTHY.items()}

        # Which scanners this subject's studies were taken on, then which stay each study belongs to.
        n_studies = int(min(1 + rng.poisson(2.2), 10))
        study_profiles = [profile_names[int(i)] for i in rng.choice(len(profile_names), n_studies, p=profile_weights)]
        stays: list[Stay] = []
        stay_studies: list[list[str]] = []
        for profile_name in study_profiles:
            setting = profiles[profile_name].setting
            fits = [k for k, s in enumerate(stays) if (s.via_ed if setting == "emergency" else s.hadm_id)]
            if fits and rng.random() < 0.45:
                k = int(rng.choice(fits))
            else:
                admitted = setting == "inpatient" or rng.random() < 0.35
                via_ed = setting == "emergency" or rng.random() < 0.8
                stays.append(Stay(via_ed=via_ed, hadm_id=next(hadm_pool) if admitted else None))
                stay_studies.append([])
                k = len(stays) - 1
            stay_studies[k].append(profile_name)

        # Lay the stays out in time, one after another, from early in the anchor year.
        clock = datetime(anchor_year, 1, 1) + timedelta(days=float(rng.uniform(0, 500)))
        subject_admissions, subject_transfers, subject_services = [], [], []
        for k, stay in enumerate(stays):
            if stay.via_ed:
                stay.ed_in = clock + timedelta(minutes=float(rng.uniform(0, 1440)))
                stay.ed_out = stay.ed_in + timedelta(hours=float(rng.uniform(3, 14)))
                subject_transfers.append(
                    {
                        "subject_id": subject_id,
                        "hadm_id": stay.hadm_id,
                        "transfer_id": next(transfer_pool),
                        "eventtype": "ed",
                        "careunit": "Emergency Department",
                        "intime": timestamp(stay.ed_in),
                        "outtime": timestamp(stay.ed_out),
                    }
                )
            if stay.hadm_id:
                start = stay.ed_out - timedelta(minutes=float(rng.uniform(0, 60))) if stay.ed_out else clock
                stay.admittime = start
                inpatient_studies = sum(profiles[p].setting == "inpatient" for p in stay_studies[k])
                unit_clock = stay.ed_out or start
                unit_names = []
                if rng.random() < 0.25 + 0.2 * inpatient_studies:
                    unit_names.append(str(rng.choice(sorted(ICU_UNITS))))
                unit_names.append(str(rng.choice(sorted(WARD_UNITS))))
                for n, unit in enumerate(unit_names):
                    days = float(rng.uniform(0.8, 2.0 + 1.5 * inpatient_studies))
                    stay.units.append((unit, unit_clock, unit_clock + timedelta(days=days)))
                    subject_transfers.append(
                        {
                            "subject_id": subject_id,
                            "hadm_id": stay.hadm_id,
                            "transfer_id": next(transfer_pool),
                            "eventtype": "admit" if n == 0 else "transfer",
                            "careunit": unit,
                            "intime": timestamp(unit_clock),
                            "outtime": timestamp(unit_clock + timedelta(days=days)),
                        }
                    )
                    unit_clock += timedelta(days=days)
                stay.dischtime = unit_clock
                stay.died = k == len(stays) - 1 and rng.random() < 0.04 * (1 + inpatient_studies)
                subject_transfers.append(
                    {
                        "subject_id": subject_id,
                        "hadm_id": stay.hadm_id,
                        "transfer_id": next(transfer_pool),
                        "eventtype": "discharge",
                        "careunit": None,
                        "intime": timestamp(stay.dischtime),
                        "outtime": None,
                    }
                )
                service_of = {**ICU_UNITS, **WARD_UNITS}
                previous = None
                for unit, intime, _ in stay.units:
                    service = service_of[unit]
                    if service != previous:
                        subject_services.append(
                            {
                                "subject_id": subject_id,
                                "hadm_id": stay.hadm_id,
                                "transfertime": timestamp(intime),
                                "prev_service": previous,
                                "curr_service": service,
                            }
                        )
                        previous = service
                via_ed = stay.via_ed
                subject_admissions.append(
                    {
                        "subject_id": subject_id,
                        "hadm_id": stay.hadm_id,
                        "admittime": timestamp(stay.admittime),
                        "dischtime": timestamp(stay.dischtime),
                        "deathtime": timestamp(stay.dischtime) if stay.died else None,
                        "admission_type": str(
                            _choice(rng, EMERGENCY_ADMISSION_TYPES if via_ed else DIRECT_ADMISSION_TYPES)
                        ),
                        "admit_provider_id": str(rng.choice(providers)),
                        "admission_location": "EMERGENCY ROOM" if via_ed else "PHYSICIAN REFERRAL",
                        "discharge_location": "DIED"
                        if stay.died
                        else str(
                            _choice(
                                rng,
                                (
                                    ("HOME", 0.5),
                                    ("HOME HEALTH CARE", 0.25),
                                    ("SKILLED NURSING FACILITY", 0.2),
                                    ("REHAB", 0.05),
                                ),
                            )
                        ),
                        **demographics,
                        "edregtime": timestamp(stay.ed_in) if via_ed else None,
                        "edouttime": timestamp(stay.ed_out) if via_ed else None,
                        "hospital_expire_flag": int(stay.died),
                    }
                )
            end = stay.dischtime or stay.ed_out
            clock = end + timedelta(days=float(1 + rng.exponential(120)))

            # Studies of this stay: ED films during the ED stay, portable films on the wards and in the ICUs.
            for profile_name in stay_studies[k]:
                profile = profiles[profile_name]
                if profile.setting == "emergency":
                    window = (stay.ed_in + timedelta(minutes=10), stay.ed_out - timedelta(minutes=5))
                else:
                    unit, unit_in, unit_out = stay.units[int(rng.integers(len(stay.units)))]
                    window = (unit_in + timedelta(minutes=30), unit_out - timedelta(minutes=30))
                seconds = float(rng.uniform(0, (window[1] - window[0]).total_seconds()))
                when = window[0] + timedelta(seconds=round(seconds, 3))
                present = set()
                if not healthy[profile.setting]:
                    prevalence = PREVALENCE[profile.setting]
                    present = {f for f in FINDINGS if f != "cardiomegaly" and rng.random() < prevalence[f]}
                    if cardiomegaly:
                        present.add("cardiomegaly")
                study = Study(
                    subject_id=subject_id,
                    study_id=next(study_pool),
                    profile=profile_name,
                    study_datetime=when,
                    findings=frozenset(present),
                    finding_seed=int(rng.integers(2**31)),
                    labels=report_labels(rng, frozenset(present)),
                )
                study_providers[study.study_id] = (
                    str(rng.choice(providers)) if rng.random() < 0.9 else "",
                    str(rng.choice(providers)),
                    str(rng.choice(providers)) if rng.random() < 0.6 else "",
                )
                for plan in profile.exposures:
                    if rng.random() >= plan.probability:
                        continue
                    kvp = float(_choice(rng, plan.kvp))
                    # Thicker patients get more mAs (exposure control), about 7% per cm beyond the average.
                    if plan.projection == "LATERAL":
                        excess_cm = 2 * anatomy.half_width_cm - 32.0
                    else:
                        excess_cm = 2 * anatomy.half_depth_cm - 22.0
                    mas = _draw_mas(rng, plan.mas_mean, plan.mas_sd, float(np.exp(0.07 * excess_cm)))
                    if profile.grid and rng.random() < 0.01:
                        mas *= float(rng.uniform(6, 15))  # retakes and very large patients: the tail above 50 mAs
                    image = Image(
                        dicom_id=dicom_id(rng),
                        subject_id=subject_id,
                        study_id=study.study_id,
                        profile=profile_name,
                        view_position=plan.view_position,
                        projection=plan.projection,
                        kvp=kvp,
                        mas=round(mas, 2),
                        exposure_time_ms=round(mas / profile.tube_current_ma * 1000.0, 1),
                        landscape=bool(rng.random() < profile.landscape_share),
                    )
                    study.image_ids.append(image.dicom_id)
                    images.append(image)
                studies.append(study)

        dod = None
        if any(s.died for s in stays):
            dod = max(s.dischtime for s in stays if s.died).strftime("%Y-%m-%d")
        elif rng.random() < 0.1:
            dod = (clock + timedelta(days=float(rng.uniform(0, 365)))).strftime("%Y-%m-%d")
        if subject_id in absent:
            continue
        patients.append(
            {
                "subject_id": subject_id,
                "gender": sex,
                "anchor_age": anchor_age,
                "anchor_year": anchor_year,
                "anchor_year_group": group,
                "dod": dod,
            }
        )
        admissions.extend(subject_admissions)
        transfers.extend(subject_transfers)
        services.extend(subject_services)

    return Population(
        patients=patients,
        admissions=admissions,
        transfers=transfers,
        services=services,
        providers=providers,
        absent_subjects=absent,
        subjects=subjects,
        studies=studies,
        images=images,
        study_providers=study_providers,
    )
