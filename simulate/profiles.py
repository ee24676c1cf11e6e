"""Scanner profiles: one YAML file (``profiles.yaml``) read into typed, validated objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from simulate.detector import Detector
from simulate.processing import Band, Processing

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")

# Optional acquisition tags a unit may write (the rest of the header is the same for every unit).
OPTIONAL_TAGS = frozenset(
    {
        "KVP",
        "DetectorType",
        "Exposure",
        "ExposureTime",
        "ExposureInmAs",
        "ExposureTimeInuS",
        "XRayTubeCurrent",
        "DistanceSourceToDetector",
        "EstimatedRadiographicMagnificationFactor",
    }
)
SETTINGS = ("inpatient", "emergency")
PROJECTIONS = ("PA", "AP", "LATERAL")


@dataclass(frozen=True)
class ExposurePlan:
    """One image of a study on this unit: what the header says, what the beam does, how likely it is taken."""

    view_position: str
    projection: str
    probability: float
    kvp: tuple[tuple[float, float], ...]
    mas_mean: float
    mas_sd: float


@dataclass(frozen=True)
class ScannerProfile:
    name: str
    description: str
    study_share: float
    setting: str
    procedure: str
    manufacturer: str
    model: str
    charset: str
    writes: frozenset[str]
    source_to_image_cm: float
    grid: bool
    filtration_mm_al: float
    detector: Detector
    matrix: tuple[int, int]
    pixel_spacing_mm: float
    landscape_share: float
    tube_current_ma: float
    exposures: tuple[ExposurePlan, ...]
    processing: Processing


def _profile(name: str, spec: dict) -> ScannerProfile:
    where = f"{PROFILES_FILE.name}: profile {name}"
    try:
        writes = frozenset(spec["writes"])
        unknown = writes - OPTIONAL_TAGS
        if unknown:
            raise ValueError(f"{where}: unknown tags in writes: {sorted(unknown)}; known: {sorted(OPTIONAL_TAGS)}")
        if spec["setting"] not in SETTINGS:
            raise ValueError(f"{where}: setting must be one of {SETTINGS}, got {spec['setting']!r}")
        exposures = tuple(
            ExposurePlan(
                view_position=str(e["view_position"]),
                projection=e["projection"],
                probability=float(e["probability"]),
                kvp=tuple((float(kv), float(p)) for kv, p in e["kvp"]),
                mas_mean=float(e["mas_mean"]),
                mas_sd=float(e["mas_sd"]),
            )
            for e in spec["exposures"]
        )
        for plan in exposures:
            if plan.projection not in PROJECTIONS:
                raise ValueError(f"{where}: projection must be one of {PROJECTIONS}, got {plan.projection!r}")
            if abs(sum(p for _, p in plan.kvp) - 1.0) > 1e-6:
                raise ValueError(f"{where}: kVp probabilities of {plan.view_position!r} must add up to 1")
        geometry = spec["geometry"]
        processing = dict(spec["processing"])
        processing["bands"] = tuple(Band(**band) for band in processing["bands"])
        processing["recognition_percentiles"] = tuple(processing["recognition_percentiles"])
        return ScannerProfile(
            name=name,
            description=spec["description"],
            study_share=float(spec["study_share"]),
            setting=spec["setting"],
            procedure=spec["procedure"],
            manufacturer=spec["manufacturer"],
            model=spec["model"],
            charset=spec["charset"],
            writes=writes,
            source_to_image_cm=float(geometry["source_to_image_cm"]),
            grid=bool(geometry["grid"]),
            filtration_mm_al=float(geometry["filtration_mm_al"]),
            detector=Detector(**spec["detector"]),
            matrix=(int(spec["matrix"][0]), int(spec["matrix"][1])),
            pixel_spacing_mm=float(spec["pixel_spacing_mm"]),
            landscape_share=float(spec["landscape_share"]),
            tube_current_ma=float(spec["tube_current_ma"]),
            exposures=exposures,
            processing=Processing(**processing),
        )
    except KeyError as error:
        raise ValueError(f"{where}: missing field {error.args[0]!r}") from error
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from error


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, ScannerProfile]:
    """All profiles of a profiles file, by name; their study shares must add up to 1."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    profiles = {name: _profile(name, body) for name, body in spec["profiles"].items()}
    total = sum(p.study_share for p in profiles.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{path}: study shares add up to {total}, expected 1")
    return profiles
