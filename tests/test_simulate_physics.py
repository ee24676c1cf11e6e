"""Physics checks of the image formation: spectra, kVp contrast, quantum noise, detector blur."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.detector import Detector, Technique, acquire, expected_signal
from simulate.phantom import Grid, PathMaps, project, random_anatomy, random_findings
from simulate.spectra import mean_energy

DIRECT = Detector("DIRECT", "a-Se", thickness_mm=1.0, blur_mm=0.05, electronic_noise_quanta=0.0)
SCINTILLATOR = Detector("SCINTILLATOR", "CsI", thickness_mm=0.6, blur_mm=0.16, electronic_noise_quanta=0.0)


def slab(shape: tuple[int, int], soft_cm: float, bone_cm: np.ndarray | float = 0.0) -> PathMaps:
    zeros = np.zeros(shape, dtype=np.float32)
    return PathMaps(
        soft_tissue=np.full(shape, soft_cm, dtype=np.float32),
        adipose=zeros,
        lung=zeros,
        bone=np.broadcast_to(np.asarray(bone_cm, dtype=np.float32), shape).copy(),
        metal=zeros,
        body_mask=np.ones(shape, dtype=bool),
    )


def test_spectrum_mean_energy_matches_spekpy_reference():
    # REFERENCE.md: 80 kVp + 2.5 mm Al -> 42.9 keV; 120 kVp -> 54.4 keV (spekpy 2.5.4, 12 degree anode).
    assert mean_energy(80, 2.5) == pytest.approx(42.9, abs=0.3)
    assert mean_energy(120, 2.5) == pytest.approx(54.4, abs=0.3)


def test_bone_contrast_falls_as_kvp_rises():
    maps = slab((4, 8), soft_cm=20.0, bone_cm=np.r_[np.zeros(4), np.ones(4)][None, :])
    contrasts = []
    for kvp in (70, 90, 110, 120):
        _, energy = expected_signal(maps, Technique(kvp, 2.0, 2.5, 180, True), DIRECT, 0.1)
        contrasts.append(np.log(energy[:, :4].mean() / energy[:, 4:].mean()))
    assert all(a > b for a, b in zip(contrasts, contrasts[1:], strict=False))
    # A simple polyenergetic model loses roughly a third of bone contrast from 70 to 120 kVp.
    assert 0.2 < 1 - contrasts[-1] / contrasts[0] < 0.5


def test_relative_noise_falls_as_one_over_sqrt_mas():
    maps = slab((96, 96), soft_cm=20.0)
    technique = Technique(110, 1.0, 2.5, 180, True)
    relative = {}
    for mas in (0.5, 2.0, 8.0):
        raw = acquire(maps, Technique(110, mas, 2.5, 180, True), DIRECT, 0.02, np.random.default_rng(1))
        relative[mas] = raw.std() / raw.mean()
    assert technique.grid
    assert relative[0.5] / relative[2.0] == pytest.approx(2.0, rel=0.1)
    assert relative[2.0] / relative[8.0] == pytest.approx(2.0, rel=0.1)


def test_scintillator_is_blurrier_than_direct_at_equal_dose():
    edge = np.zeros((32, 128), dtype=np.float32)
    edge[:, 64:] = 1.0
    maps = slab(edge.shape, soft_cm=20.0, bone_cm=edge)
    technique = Technique(110, 2.0, 2.5, 180, True)
    widths, noise = {}, {}
    for name, detector in (("direct", DIRECT), ("scintillator", SCINTILLATOR)):
        clean = acquire(maps, technique, detector, 0.01, np.random.default_rng(0), noise=False)[16]
        span = clean[:64].mean() - clean[64:].mean()
        fraction = (clean[:64].mean() - clean) / span
        widths[name] = np.sum((fraction > 0.1) & (fraction < 0.9))
        noisy = acquire(slab((64, 64), 20.0), technique, detector, 0.01, np.random.default_rng(2))
        noise[name] = np.diff(noisy, axis=1).std() / noisy.mean()
    assert widths["scintillator"] > widths["direct"]
    assert noise["scintillator"] < noise["direct"], "light spread also smooths the quantum noise"


@pytest.mark.parametrize("view", ["PA", "AP", "LATERAL"])
def test_phantom_projections_are_finite_and_anatomical(view):
    anatomy = random_anatomy(np.random.default_rng(3), "F")
    maps = project(
        anatomy, random_findings(np.random.default_rng(4), set()), Grid(86, 70, 0.5), view=view, source_to_image_cm=180
    )
    for layer in maps.stack():
        assert np.isfinite(layer).all() and (layer >= 0).all()
    assert maps.lung.max() > 5.0 and maps.bone.max() > 0.5


def test_findings_change_the_material_maps():
    anatomy = random_anatomy(np.random.default_rng(3), "M")
    grid = Grid(86, 70, 0.5)
    healthy = project(
        anatomy, random_findings(np.random.default_rng(4), set()), grid, view="PA", source_to_image_cm=180
    )
    for finding in ("consolidation", "pleural_effusion", "edema", "atelectasis", "pneumothorax"):
        sick = project(
            anatomy, random_findings(np.random.default_rng(4), {finding}), grid, view="PA", source_to_image_cm=180
        )
        assert sick.lung.sum() < healthy.lung.sum(), finding
    enlarged = project(
        anatomy, random_findings(np.random.default_rng(4), {"cardiomegaly"}), grid, view="PA", source_to_image_cm=180
    )
    assert enlarged.lung.sum() < healthy.lung.sum()
    devices = project(
        anatomy, random_findings(np.random.default_rng(4), {"support_devices"}), grid, view="PA", source_to_image_cm=180
    )
    assert devices.metal.sum() > 0 and healthy.metal.sum() == 0


def test_a_rendering_without_bone_or_noise_is_the_same_chest_changed_only_there():
    """The ground truth of benchmarks/bone_estimate.py: bone=False replaces the bone by soft tissue, noise=False takes
    the quantum noise away; neither moves the field or anything else."""
    from simulate.bench import arm_profiles, arm_task, bench_phantoms
    from simulate.profiles import load_profiles
    from simulate.render import render

    profiles = load_profiles()
    profile, kvp = arm_profiles(profiles)["D110"]
    task = arm_task(bench_phantoms(4, 0)[0], "D110", profile, kvp)

    def rendered(**options) -> np.ndarray:
        return render(task, profile, 96, **options)[0].astype(np.float64)

    clean, boneless = rendered(noise=False), rendered(noise=False, bone=False)
    assert np.array_equal(clean, rendered(noise=False))  # deterministic without noise
    assert np.array_equal(rendered(), rendered())  # with noise too, from the task's seed
    assert np.std(rendered() - clean) > 0  # the noise is what the two differ by
    assert np.array_equal(clean > 0, boneless > 0)  # the same collimated field
    assert np.abs(clean - boneless).mean() > 0.01 * clean.mean()  # the bone shows
