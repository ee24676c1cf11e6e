"""Energy matching (harmonize.bone, the ``energy`` stage of harmonize.scanners): a bone model trained on paired
renderings (an image, and its bone component from a bone-free twin), stored as plain arrays, and a per-scanner gain on
its estimate, carried back to each image's pixel values; on synthetic chests whose 'ribs' differ in contrast between
two scanners, as a higher kVp and a CsI detector lower bone contrast."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from harmonize import scanners
from harmonize.acquisition import Acquisition
from harmonize.bone import carried_back, estimate_bone, explained_share, train_bone_model
from harmonize.common import bone_model_of, params_from_json, params_to_json
from harmonize.config import field_preprocessing
from ingest.images import analysis_image

SIDE = 160
SPACING_MM = 1.0
DOMAIN = field_preprocessing(32, 128.0)  # 4 mm analysis pixels, as the bench's 64 px over 256 mm
REFERENCE = Acquisition("meridian | stativ | direct | 1.000 mm | monochrome2", "meridian | stativ", SPACING_MM)
SOFTER = Acquisition("meridian | stativ | scintillator | 1.000 mm | monochrome2", "meridian | stativ", SPACING_MM)
BONE_CONTRAST = {REFERENCE.scanner: 1.0, SOFTER.scanner: 0.6}


def chest(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(soft tissue, bone) of a synthetic chest: a smooth random field, and curved 'ribs' of random phase and
    spacing."""
    rng = np.random.default_rng(seed)
    soft = ndimage.gaussian_filter(rng.normal(size=(SIDE, SIDE)), 12)
    soft = (soft - soft.mean()) / soft.std()
    rows, cols = np.mgrid[:SIDE, :SIDE].astype(float)
    period, phase, bend = rng.uniform(18, 26), rng.uniform(0, 2 * np.pi), rng.uniform(-0.004, 0.004)
    bone = np.maximum(np.sin(2 * np.pi * (rows + bend * (cols - SIDE / 2) ** 2) / period + phase), 0.0) ** 2
    return soft, bone


def render(seed: int, acquisition: Acquisition, *, bone: bool = True, noise: bool = True) -> np.ndarray:
    soft, ribs = chest(seed)
    image = 1500 + 200 * soft + (350 * BONE_CONTRAST[acquisition.scanner] * ribs if bone else 0)
    if noise:
        image = image + np.random.default_rng(seed + 1).normal(0, 15, image.shape)
    return np.clip(np.rint(image), 0, 4095).astype(np.uint16)


def analysed(image: np.ndarray) -> np.ndarray:
    return analysis_image(image, DOMAIN, (SPACING_MM, SPACING_MM))


@pytest.fixture(scope="module")
def bone_model():
    seeds = range(64)
    inputs = np.stack([analysed(render(s, REFERENCE)) for s in seeds])
    targets = np.stack(
        [analysed(render(s, REFERENCE, noise=False)) - analysed(render(s, REFERENCE, bone=False, noise=False))
         for s in seeds]
    )  # fmt: skip
    return train_bone_model(inputs, targets, DOMAIN, epochs=25, seed=0)


@pytest.fixture(scope="module")
def energy(bone_model):
    # Unpaired fits: the reference scanner's chests 100-129, the softer scanner's 130-159.
    images = [(render(s, REFERENCE), REFERENCE, True) for s in range(100, 130)]
    images += [(render(s, SOFTER), SOFTER, False) for s in range(130, 160)]
    return scanners.fit("energy", lambda: iter(images), bone_model=bone_model)


def test_the_bone_model_estimates_the_bone_component_of_held_out_chests(bone_model):
    seeds = range(200, 216)
    truth = np.stack(
        [analysed(render(s, REFERENCE, noise=False)) - analysed(render(s, REFERENCE, bone=False, noise=False))
         for s in seeds]
    )  # fmt: skip
    estimated = estimate_bone(bone_model, np.stack([analysed(render(s, REFERENCE)) for s in seeds]))
    assert float(np.mean(explained_share(truth, estimated))) > 0.5


def test_the_bone_model_is_plain_arrays_that_reload_exactly(bone_model):
    again = params_from_json(params_to_json(bone_model))
    image = analysed(render(300, REFERENCE))[None]
    assert all(isinstance(value, np.ndarray | int | float) for value in bone_model.values())
    np.testing.assert_array_equal(estimate_bone(bone_model, image), estimate_bone(again, image))


def test_training_is_seeded():
    inputs = np.stack([analysed(render(s, REFERENCE)) for s in range(8)])
    targets = inputs - analysed(render(0, REFERENCE, bone=False))
    first, second = (train_bone_model(inputs, targets, DOMAIN, epochs=2, seed=3) for _ in range(2))
    assert all(np.array_equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize(
    "inputs, targets, domain, match",
    [
        (np.zeros((2, 32, 32)), np.zeros((3, 32, 32)), DOMAIN, "must be equal"),
        (np.zeros((2, 32, 32)), np.zeros((2, 32, 32)), field_preprocessing(32, 0.0), "equalized field"),
        (np.zeros((2, 30, 30)), np.zeros((2, 30, 30)), field_preprocessing(30, 128.0), "multiple of 4"),
    ],
)
def test_training_refuses_what_it_cannot_learn_from(inputs, targets, domain, match):
    with pytest.raises(ValueError, match=match):
        train_bone_model(inputs, targets, domain, epochs=1)


def test_carried_back_without_a_change_keeps_every_value():
    image = render(400, SOFTER)
    kept = carried_back(image, (SPACING_MM, SPACING_MM), np.zeros((32, 32), np.float32), DOMAIN)
    np.testing.assert_array_equal(kept, image.astype(np.float32))


def test_carried_back_reaches_the_intended_analysis_image():
    image = render(401, SOFTER)
    soft, ribs = chest(401)
    change = 0.15 * (analysed(render(401, REFERENCE, noise=False)) - analysed(render(401, SOFTER, noise=False)))
    changed = carried_back(image, (SPACING_MM, SPACING_MM), change, DOMAIN)
    reached = analysed(changed) - analysed(image)
    assert np.corrcoef(reached.ravel(), change.ravel())[0, 1] > 0.8
    # Outside the analysed field the image is as it was.
    rows = slice(0, (SIDE - 128) // 2)
    np.testing.assert_array_equal(changed[rows], image[rows].astype(np.float32))


def test_carried_back_takes_only_the_image_where_the_field_is_larger():
    image = render(402, SOFTER)[:100, :140]  # narrower than the 128 mm field in one direction
    change = np.full((32, 32), 0.05, np.float32)
    change[:, :16] = -0.05
    changed = carried_back(image, (SPACING_MM, SPACING_MM), change, DOMAIN)
    assert changed.shape == image.shape and not np.array_equal(changed, image.astype(np.float32))


def test_energy_matching_gains_the_softer_scanners_bone_contrast(energy, bone_model):
    own, reference = (list(energy["scanners"]).index(s) for s in (SOFTER.scanner, REFERENCE.scanner))
    gain = scanners.energy_gain(
        {"bone_energy": energy["stage0.bone_energy"][own]}, {"bone_energy": energy["stage0.bone_energy"][reference]}
    )
    assert 1.2 < gain < 2.0  # the bone contrast was 0.6 of the reference's
    # What the fit keeps: plain arrays, the bone model among them, array for array, through JSON.
    assert set(bone_model_of(energy)) and params_to_json(energy)
    stored = bone_model_of(params_from_json(params_to_json(energy)))
    assert stored.keys() == bone_model.keys()
    assert all(np.array_equal(stored[key], bone_model[key]) for key in bone_model)


def test_energy_matching_brings_a_chest_toward_its_reference_rendering(energy):
    before, after = [], []
    for seed in range(500, 508):
        truth = analysed(render(seed, REFERENCE))
        other = render(seed, SOFTER)
        matched = scanners.apply(other, SOFTER, energy)
        assert matched.dtype == other.dtype and matched.shape == other.shape
        before.append(np.mean((analysed(other) - truth) ** 2))
        after.append(np.mean((analysed(matched) - truth) ** 2))
    assert np.mean(after) < 0.8 * np.mean(before), (np.mean(before), np.mean(after))


def test_the_reference_scanner_and_images_without_a_spacing_are_left_as_they_are(energy):
    image = render(600, REFERENCE)
    np.testing.assert_array_equal(scanners.apply(image, REFERENCE, energy), image)
    silent = Acquisition(SOFTER.scanner, SOFTER.processing, None)
    other = render(600, SOFTER)
    np.testing.assert_array_equal(scanners.apply(other, silent, energy), other)
    assert "no pixel_spacing_mm in the header: the energy stage" in scanners.fallback_reason(energy, silent)


def test_a_method_with_an_energy_stage_needs_a_bone_model():
    images = [(render(s, REFERENCE), REFERENCE, True) for s in range(20)]
    with pytest.raises(ValueError, match="needs a bone model: train one"):
        scanners.fit("physics_energy", lambda: iter(images))
