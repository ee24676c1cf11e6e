"""A paired benchmark set: the same phantoms rendered on several units, pixel-aligned, split by phantom.

The leaderboard of the demo compares scanners on different patients and small test sets; here every test phantom is
seen on every unit, so a difference between units or methods is measured within phantoms (paired) and training,
validation and test phantoms are disjoint by construction. Only the images the benchmark needs are rendered.

Arms (one unit's physics each, all on D110's matrix and pixel spacing, so geometry and outline carry no scanner signal):

- ``D110``: the direct-panel PA room at 110 kVp with its grid (the reference);
- ``S120``: the CsI room at 120 kVp with its own processing (the scanner-classification partner);
- ``D90PA``: the portable unit's physics (90 kVp, 2.5 mm Al, no grid, 100 cm, a-Se) taking a PA: a physical shift with
  the same vendor's processing chain as D110 with a weaker fine-detail gain, for the diagnostic transfer experiment;
- ``D110R``: D110 again with new noise and collimation: the negative control, where no method should open a gap;
- ``S120T``: S120's detector and beam (CsI, 120 kVp, 3.5 mm Al) with D110's grid, distance and processing: the
  scanners' physics without their vendor processing, the texture difference the project's hypothesis is about;
- ``HP``: the older unit (CsI, 100 kVp, 150 cm, its own processing) whose headers lack KVP, detector type and the
  distances: for the fits and the fidelity of methods that must fall back where the header is silent (training and
  test phantoms only);
- ``D110atD90PA``, ``D110atHP``: D110 (beam, grid, detector, processing, and its noise draw) at D90PA's and HP's
  source-to-image distance: the geometry references (D110atD90PA also on training and validation phantoms, for the
  confounded design's geometry twin; D110atHP on test phantoms only). A shorter distance magnifies each depth of the
  chest differently (parallax), which no 2-D map undoes, so their fidelity against D110 is the most any method can
  reach on D90PA and HP: what the beam, grid, detector and processing leave is the rest.
- ``D110clean``, ``D110boneless``: D110 (its mAs and collimation draw) without quantum noise, and the same with its bone
  replaced by soft tissue: their difference is the phantom's bone component, the ground truth a learned bone estimate
  is trained on (``harmonize/bone.py``; training and validation phantoms only, so no test phantom's truth is seen).

Files: ``<out>/<arm>/<phantom_id>.dcm`` (DX For Presentation, as the stand-in writes them), ``<out>/manifest.csv``
(phantom_id, split, sex, abnormal, finding, arm, path) and ``<out>/bench-set.json`` (the stand-in's version, the image
size and the seed the images were rendered with). A re-run renders only what is missing, and only into a set made
the same way: equal seeds give equal bytes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from simulate.dicom_writer import dx_bytes, uid_from
from simulate.profiles import ScannerProfile, load_profiles
from simulate.render import STAND_IN_VERSION, ImageTask, render
from simulate.spectra import tube_spectrum
from xrh.errors import UsageError
from xrh.files import write_bytes_atomic
from xrh.processes import worker_pool
from xrh.progress import track

# D110 at another unit's source-to-image distance: each geometry reference and that unit's profile.
GEOMETRY_REFERENCES = {"D110atD90PA": "D90", "D110atHP": "HP"}
# The bone-estimate truth: each arm's (bone, quantum noise) as rendered; every other arm has both.
TRUTH_ARMS = {"D110clean": (True, False), "D110boneless": (False, False)}
# Appended only: an arm's index seeds its draws.
ARMS = ("D110", "S120", "D90PA", "D110R", "S120T", "HP", "D110atD90PA", "D110atHP", *TRUTH_ARMS)
SPLITS = (("train", 0.5), ("validate", 0.1), ("test", 0.4))
ABNORMAL_FINDINGS = ("consolidation", "lung_lesion", "edema", "pleural_effusion", "atelectasis")
MANIFEST_COLUMNS = ("phantom_id", "split", "sex", "abnormal", "finding", "arm", "path")
# Which arms each split needs: the test phantoms on every arm; training and validation for the classifiers.
ARMS_BY_SPLIT = {
    "train": ("D110", "S120", "D90PA", "S120T", "HP", "D110atD90PA", *TRUTH_ARMS),
    "validate": ("D110", "S120", "D90PA", "S120T", "D110atD90PA", *TRUTH_ARMS),
    "test": tuple(arm for arm in ARMS if arm not in TRUTH_ARMS),
}


@dataclass(frozen=True)
class BenchPhantom:
    phantom_id: int
    split: str
    sex: str
    abnormal: bool
    finding: str
    anatomy_seed: int
    finding_seed: int
    image_seed: int


def bench_phantoms(count: int, seed: int) -> list[BenchPhantom]:
    """``count`` phantoms, half abnormal (one finding each), split train/validate/test by ``SPLITS``."""
    rng = np.random.default_rng(seed)
    bounds = np.cumsum([round(share * count) for _, share in SPLITS])
    phantoms = []
    for index in range(count):
        split = SPLITS[int(np.searchsorted(bounds, index, side="right"))][0] if index < bounds[-1] else "test"
        abnormal = bool(rng.random() < 0.5)
        phantoms.append(
            BenchPhantom(
                phantom_id=100_000 + index,
                split=split,
                sex=str(rng.choice(["F", "M"])),
                abnormal=abnormal,
                finding=str(rng.choice(ABNORMAL_FINDINGS)) if abnormal else "",
                anatomy_seed=int(rng.integers(2**31)),
                finding_seed=int(rng.integers(2**31)),
                image_seed=int(rng.integers(2**31)),
            )
        )
    return phantoms


def arm_profiles(profiles: dict[str, ScannerProfile]) -> dict[str, tuple[ScannerProfile, float]]:
    """Each arm's unit (its physics and processing) and kVp."""
    d110, s120 = profiles["D110"], profiles["S120"]
    return {
        "D110": (d110, 110.0),
        "S120": (s120, 120.0),
        "D90PA": (profiles["D90"], 90.0),
        "D110R": (d110, 110.0),
        "S120T": (replace(d110, detector=s120.detector, filtration_mm_al=s120.filtration_mm_al), 120.0),
        "HP": (profiles["HP"], 100.0),
        **{
            arm: (replace(d110, source_to_image_cm=profiles[unit].source_to_image_cm), 110.0)
            for arm, unit in GEOMETRY_REFERENCES.items()
        },
        **{arm: (d110, 110.0) for arm in TRUTH_ARMS},
    }


def _draws_of(arm: str) -> str:
    """The arm whose mAs and noise draws this arm shares: a geometry reference and a truth arm share D110's, so that
    only the distance, or the noise and bone, differ."""
    return "D110" if arm in GEOMETRY_REFERENCES or arm in TRUTH_ARMS else arm


def arm_task(phantom: BenchPhantom, arm: str, profile: ScannerProfile, kvp: float) -> ImageTask:
    """The phantom's PA on ``arm`` (its unit ``profile`` at ``kvp``): the arm's draw of the mAs, the noise and the
    collimation (:func:`_draws_of`)."""
    plan = next((p for p in profile.exposures if p.projection != "LATERAL"), profile.exposures[0])
    rng = np.random.default_rng([phantom.image_seed, ARMS.index(_draws_of(arm))])
    mas = float(plan.mas_mean * np.exp(rng.normal(0.0, 0.2)))
    return ImageTask(
        dicom_id=f"{phantom.phantom_id}-{arm}",
        subject_id=phantom.phantom_id,
        study_id=phantom.phantom_id,
        sex=phantom.sex,
        anatomy_seed=phantom.anatomy_seed,
        findings=frozenset({phantom.finding} if phantom.abnormal else set()),
        finding_seed=phantom.finding_seed,
        acquired=datetime(2150, 1, 1, 12, 0),
        study_instance_uid=uid_from("bench", phantom.phantom_id),
        projection="PA",
        view_position="PA",
        kvp=kvp,
        mas=round(mas, 2),
        exposure_time_ms=round(mas / profile.tube_current_ma * 1000.0, 1),
        landscape=False,
        # D110R differs from D110 only in its noise and collimation; the other arms share D110's draw of both.
        image_seed=phantom.image_seed + (1 if arm == "D110R" else 0),
    )


@lru_cache(maxsize=1)
def _profiles() -> dict[str, ScannerProfile]:
    return load_profiles()


def _render_one(image_size: int, out: str, work: tuple[BenchPhantom, str]) -> str:
    phantom, arm = work
    profiles = _profiles()
    profile, kvp = arm_profiles(profiles)[arm]
    bone, noise = TRUTH_ARMS.get(arm, (True, True))
    task = arm_task(phantom, arm, profile, kvp)
    pixels, header = render(task, profile, image_size, geometry_of=profiles["D110"], bone=bone, noise=noise)
    relative = f"{arm}/{phantom.phantom_id}.dcm"
    write_bytes_atomic(Path(out) / relative, dx_bytes(header, pixels))
    return relative


SET_STAMP = "bench-set.json"


def claim_set(out: Path, image_size: int, seed: int) -> None:
    """Stamp ``out`` with how its images are rendered, or check the stamp already there.

    Raises
    ------
    UsageError
        If ``out`` holds images rendered another way (another stand-in version, image size or seed), or images without
        a stamp (rendered before stamps were written): extending it would mix two sets.
    """
    stamp = {"stand_in_version": STAND_IN_VERSION, "image_size": image_size, "seed": seed}
    path = Path(out) / SET_STAMP
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        if found == stamp:
            return
        differs = ", ".join(
            f"{key} {found.get(key)} (now {value})" for key, value in stamp.items() if found.get(key) != value
        )
        raise UsageError(f"{out} holds a bench set rendered with {differs}; render into a new folder or delete it")
    if any(next((Path(out) / arm).glob("*.dcm"), None) for arm in ARMS):
        raise UsageError(
            f"{out} holds bench images without {SET_STAMP} (rendered by an earlier stand-in); "
            "render into a new folder or delete it"
        )
    write_bytes_atomic(path, json.dumps(stamp, indent=1).encode("utf-8"))


def render_bench(out: Path, phantoms: list[BenchPhantom], image_size: int, *, seed: int, workers: int = 1) -> Path:
    """Render every (phantom, arm) the splits need that is not on disk yet, into a set rendered the same way
    (:func:`claim_set`; ``seed`` is the one ``phantoms`` were drawn with); write the manifest; return its path."""
    out = Path(out)
    claim_set(out, image_size, seed)
    needed = [(p, arm) for p in phantoms for arm in ARMS_BY_SPLIT[p.split]]
    missing = [(p, arm) for p, arm in needed if not (out / arm / f"{p.phantom_id}.dcm").exists()]
    render_one = partial(_render_one, image_size, str(out))
    arms = arm_profiles(_profiles())
    for profile, kvp in arms.values():
        tube_spectrum(kvp, profile.filtration_mm_al)  # warm the cache once, before the workers fork
    if workers > 1 and missing:
        # One BLAS thread per worker; chunks of four keep a phantom's arms in one worker (its vessel trees are cached).
        with worker_pool(workers, start_method="fork", initializer=threadpool_limits, initargs=(1,)) as executor:
            done = executor.map(render_one, missing, chunksize=4)
            for _ in track(done, len(missing), "rendering the bench set", unit="images"):
                pass
    else:
        for _ in track(map(render_one, missing), len(missing), "rendering the bench set", unit="images"):
            pass
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for phantom, arm in needed:
        writer.writerow(
            [phantom.phantom_id, phantom.split, phantom.sex, int(phantom.abnormal), phantom.finding, arm]
            + [f"{arm}/{phantom.phantom_id}.dcm"]
        )
    manifest = out / "manifest.csv"
    write_bytes_atomic(manifest, text.getvalue().encode("utf-8"))
    return manifest
