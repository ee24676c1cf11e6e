"""One image from start to end: phantom, exposure, detector, vendor processing, and its DICOM header."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from simulate.detector import Technique, acquire, unattenuated_signal
from simulate.dicom_writer import DxHeader
from simulate.phantom import Grid, body_across_detector, project, random_anatomy, random_findings
from simulate.processing import present
from simulate.profiles import ScannerProfile

# What the stand-in renders: raise it whenever a change to the anatomy, physics or processing changes the pixels, so a
# set rendered before the change is not extended with images rendered after it (simulate/bench.py checks it).
# 2: vertebral bodies as flat-ended cylinders, each rib's shape varied, posterior ribs flatter.
# 3: the torso magnified like what it holds, lungs inside the chest wall, ribs arched and of mid-rib size, the chest
#    wall convex, domes curved, larger hilar vessels, fainter parenchyma.
# 4: the heart a tilted oval, pedicles of measured size and convergence, spinous processes sloping bars.
STAND_IN_VERSION = 4


@dataclass(frozen=True)
class ImageTask:
    """Everything needed to render one image, in plain values (it is sent to worker processes)."""

    dicom_id: str
    subject_id: int
    study_id: int
    sex: str
    anatomy_seed: int
    findings: frozenset[str]
    finding_seed: int
    acquired: datetime
    study_instance_uid: str
    projection: str
    view_position: str
    kvp: float
    mas: float
    exposure_time_ms: float
    landscape: bool
    image_seed: int


def image_geometry(profile: ScannerProfile, landscape: bool, image_size: int | None) -> tuple[int, int, float]:
    """Rows, columns and pixel spacing (mm): the unit's native matrix, scaled so its longer side is ``image_size``.

    The field of view stays the detector's, so a smaller image has proportionally larger pixels.
    """
    rows, cols = profile.matrix[::-1] if landscape else profile.matrix
    if image_size is None:
        return rows, cols, profile.pixel_spacing_mm
    if image_size < 16:
        raise ValueError(f"image size must be at least 16 pixels, got {image_size}")
    scale = image_size / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale)), profile.pixel_spacing_mm / scale


def collimation_mask(
    rows: int,
    cols: int,
    spacing_mm: float,
    rng: np.random.Generator,
    max_margin_cm: float,
    body_cm: tuple[float, float] | None = None,
) -> np.ndarray:
    """The exposed field: the detector less a random collimator margin on each side.

    ``body_cm`` (centre and half width across the image, in cm on the detector) narrows the field to the body plus
    0.5-2 cm each side, as a technologist collimates a patient narrower than the detector.
    """
    margins = rng.uniform(0.0, max_margin_cm, size=4) * 10.0 / spacing_mm
    top, bottom, left, right = (int(m) for m in margins)
    if body_cm is not None:
        centre_cm, half_width_cm = body_cm
        sides_cm = half_width_cm + rng.uniform(0.5, 2.0, size=2)
        middle = (cols - 1) / 2 + centre_cm * 10.0 / spacing_mm
        left = max(left, int(middle - sides_cm[0] * 10.0 / spacing_mm))
        right = max(right, int(cols - 1 - middle - sides_cm[1] * 10.0 / spacing_mm))
    mask = np.zeros((rows, cols), dtype=bool)
    mask[top : rows - bottom, left : cols - right] = True
    return mask


def counterpart_task(task: ImageTask, source: ScannerProfile, target: ScannerProfile) -> ImageTask:
    """The same exposure as ``task`` (same patient, findings, projection) as ``target`` would have taken it.

    The technique is the target's usual one for the projection (its most frequent kVp; the task's mAs scaled by the
    ratio of the two units' mean mAs, which keeps the patient-size dependence).
    """

    def plan_for(profile: ScannerProfile):
        return next((p for p in profile.exposures if p.projection == task.projection), profile.exposures[0])

    source_plan, target_plan = plan_for(source), plan_for(target)
    mas = task.mas * target_plan.mas_mean / source_plan.mas_mean
    kvp = max(target_plan.kvp, key=lambda pair: pair[1])[0]
    return replace(
        task,
        kvp=kvp,
        mas=round(mas, 2),
        exposure_time_ms=round(mas / target.tube_current_ma * 1000.0, 1),
        view_position=target_plan.view_position,
    )


# A unit estimates the magnification for a nominal patient, not the one in front of it: the mid-plane of an average
# adult chest (half of its 22 cm depth) plus the gap to the detector.
NOMINAL_MID_PLANE_TO_DETECTOR_CM = 12.5


def _distances(source_to_image_cm: float, writes: frozenset[str]) -> dict[str, float]:
    """The header's source-to-detector and source-to-patient distances (mm) and the estimated magnification (their
    ratio), those of them the unit ``writes``, for a nominal patient."""
    source_to_patient_cm = source_to_image_cm - NOMINAL_MID_PLANE_TO_DETECTOR_CM
    distances = {}
    if "DistanceSourceToDetector" in writes:
        distances["source_to_detector_mm"] = source_to_image_cm * 10.0
        distances["source_to_patient_mm"] = source_to_patient_cm * 10.0
    if "EstimatedRadiographicMagnificationFactor" in writes:
        distances["magnification"] = source_to_image_cm / source_to_patient_cm
    return distances


def render(
    task: ImageTask,
    profile: ScannerProfile,
    image_size: int | None,
    *,
    geometry_of: ScannerProfile | None = None,
    bone: bool = True,
    noise: bool = True,
) -> tuple[np.ndarray, DxHeader]:
    """Stored pixels and header of one image taken on ``profile``.

    ``geometry_of`` renders on another unit's matrix and pixel spacing (paired mode: pixel-aligned counterparts).
    ``bone=False`` renders the same chest with its bone replaced by soft tissue and ``noise=False`` without quantum
    noise: the ground truth of experiments that need the image's bone component (``benchmarks/bone_estimate.py``).
    """
    rng = np.random.default_rng(task.image_seed)
    rows, cols, spacing_mm = image_geometry(geometry_of or profile, task.landscape, image_size)
    grid = Grid(rows, cols, spacing_mm / 10.0)
    anatomy = random_anatomy(np.random.default_rng(task.anatomy_seed), task.sex)
    findings = random_findings(np.random.default_rng(task.finding_seed), task.findings)
    maps = project(anatomy, findings, grid, view=task.projection, source_to_image_cm=profile.source_to_image_cm)
    if not bone:
        maps = maps.without_bone()
    portable = profile.setting == "inpatient"
    body = body_across_detector(anatomy, task.projection, profile.source_to_image_cm)
    field = collimation_mask(rows, cols, spacing_mm, rng, max_margin_cm=2.0 if portable else 1.0, body_cm=body)
    technique = Technique(
        kvp=task.kvp,
        mas=task.mas,
        filtration_mm_al=profile.filtration_mm_al,
        source_to_image_cm=profile.source_to_image_cm,
        grid=profile.grid,
    )
    raw = acquire(maps, technique, profile.detector, spacing_mm / 10.0, rng, field_mask=field, noise=noise)
    direct = unattenuated_signal(technique, profile.detector, spacing_mm / 10.0)
    pixels = present(raw, profile.processing, spacing_mm, field, direct)
    orientation = "Recumbent" if task.projection == "AP" and rng.random() < 0.6 else "Erect"
    writes = profile.writes
    header = DxHeader(
        dicom_id=task.dicom_id,
        subject_id=task.subject_id,
        study_id=task.study_id,
        sex=task.sex,
        acquired=task.acquired,
        study_instance_uid=task.study_instance_uid,
        procedure=profile.procedure,
        view_position=task.view_position,
        orientation=orientation,
        manufacturer=profile.manufacturer,
        model=profile.model,
        charset=profile.charset,
        photometric=profile.processing.photometric,
        bits_stored=profile.processing.bits_stored,
        pixel_spacing_mm=spacing_mm,
        kvp=task.kvp if "KVP" in writes else None,
        detector_type=profile.detector.detector_type if "DetectorType" in writes else None,
        exposure_mas=round(task.mas) if "Exposure" in writes else None,
        exposure_time_ms=max(1, round(task.exposure_time_ms)) if "ExposureTime" in writes else None,
        tube_current_ma=round(profile.tube_current_ma) if "XRayTubeCurrent" in writes else None,
        exposure_in_mas=task.mas if "ExposureInmAs" in writes else None,
        exposure_time_in_us=task.exposure_time_ms * 1000.0 if "ExposureTimeInuS" in writes else None,
        **_distances(profile.source_to_image_cm, writes),
    )
    return pixels, header
