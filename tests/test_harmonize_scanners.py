"""The acquisition-aware methods (harmonize.scanners): fitted per scanner from each scanner's own, unpaired images,
chosen per image by its header, with explicit fallbacks; through real DICOM files and real headers."""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

from harmonize import scanners
from harmonize.acquisition import Acquisition, acquisition_of
from harmonize.common import params_from_json, params_to_json
from harmonize.fitting import Harmonization, apply_batch, fit_parameters, read_png16
from simulate.dicom_writer import DxHeader, dx_bytes
from xrh.batches import in_this_process

SIDE = 128
SPACING_MM = 1.0
REFERENCE = Acquisition("meridian | stativ | direct | 1.000 mm | monochrome1", "meridian | stativ", SPACING_MM, 1.07)
OTHER = Acquisition("nord | lumina | scintillator | 1.000 mm | monochrome2", "nord | lumina", SPACING_MM, 1.14)


def anatomy(seed: int) -> np.ndarray:
    """A phantom: a power-law random field (clustered background) with a few bright discs (nodules, vessels)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.normal(size=(SIDE, SIDE)))
    radius = np.hypot(np.fft.fftfreq(SIDE)[:, None], np.fft.fftfreq(SIDE)[None, :])
    field = np.real(np.fft.ifft2(spectrum / np.maximum(radius, 1 / SIDE) ** 1.5))
    field = (field - field.mean()) / field.std()
    rows, cols = np.mgrid[:SIDE, :SIDE]
    for _ in range(6):
        y, x, r = rng.uniform(20, SIDE - 20), rng.uniform(20, SIDE - 20), rng.uniform(2, 6)
        field += 1.5 * (np.hypot(rows - y, cols - x) < r)
    return field


def render(field: np.ndarray, acquisition: Acquisition, seed: int) -> np.ndarray:
    """The phantom as each 'scanner' presents it (uint16): magnified about the centre, blurred and enhanced, toned."""
    rng = np.random.default_rng(seed + 7)
    zoom = acquisition.magnification / REFERENCE.magnification
    centre = (SIDE - 1) / 2
    field = ndimage.affine_transform(field, np.eye(2) / zoom, offset=centre - centre / zoom, order=1, mode="nearest")
    if acquisition is OTHER:
        blurred = ndimage.gaussian_filter(field, 1.2)
        field = blurred + 0.8 * (blurred - ndimage.gaussian_filter(blurred, 6))  # detector blur, then enhancement
        tone = 1 / (1 + np.exp(-0.9 * field))
    else:
        tone = 1 / (1 + np.exp(-0.6 * field))
    noisy = tone + rng.normal(0, 0.004, field.shape)
    return np.clip(np.rint(noisy * 4000), 0, 4095).astype(np.uint16)


def stream(phantoms, acquisition, is_reference):
    return [(render(anatomy(p), acquisition, p), acquisition, is_reference) for p in phantoms]


@pytest.fixture(scope="module")
def fitted() -> dict[str, dict]:
    # Unpaired fits: the reference scanner's images of phantoms 0-29, the other scanner's of phantoms 30-59.
    images = stream(range(30), REFERENCE, True) + stream(range(30, 60), OTHER, False)
    # The methods with an energy stage need a bone model: tests/test_harmonize_energy.py trains one.
    methods = [m for m in scanners.SCANNER_METHODS if not scanners.reads_bone_model(m)]
    return {method: scanners.fit(method, lambda: iter(images)) for method in methods}


def psnr_against_reference(params, phantoms=range(100, 106)) -> tuple[float, float]:
    """Mean PSNR (dB) of the other scanner's renderings against the reference's, before and after, on held-out
    phantoms, each image scaled to [0, 1] by the reference rendering's range."""
    before, after = [], []
    for p in phantoms:
        truth = render(anatomy(p), REFERENCE, p).astype(np.float64)
        other = render(anatomy(p), OTHER, p)
        harmonized = scanners.apply(other, OTHER, params).astype(np.float64)
        span = truth.max() - truth.min()
        crop = slice(16, SIDE - 16)  # away from the edges the zoom continues
        before.append(peak_signal_noise_ratio(truth[crop, crop], other[crop, crop].astype(np.float64), data_range=span))
        after.append(peak_signal_noise_ratio(truth[crop, crop], harmonized[crop, crop], data_range=span))
    return float(np.mean(before)), float(np.mean(after))


def test_the_chain_brings_another_scanner_to_the_reference_on_held_out_phantoms(fitted):
    before, after = psnr_against_reference(fitted["physics"])
    assert after > before + 6.0, (before, after)
    # Every stage alone helps less than the chain.
    for stage in ("geometry", "tone", "transfer"):
        alone = psnr_against_reference(fitted[stage])[1]
        assert alone < after, (stage, alone, after)


def test_the_reference_scanners_own_images_are_left_as_they_are(fitted):
    image = render(anatomy(200), REFERENCE, 200)
    out = scanners.apply(image, REFERENCE, fitted["physics"])
    assert np.abs(out.astype(np.float64) - image).max() < 0.5


def test_the_reference_scanner_is_the_one_of_the_reference_images_and_each_scanner_its_own_row(fitted):
    params = fitted["physics"]
    assert params["reference_scanner"] == REFERENCE.scanner
    assert params["scanners"] == sorted([REFERENCE.scanner, OTHER.scanner])
    assert list(params["scanner_images"]) == [30, 30]
    assert params["stage2.density"].shape == (2, len(scanners.FREQUENCY_EDGES_PER_MM) - 1)
    assert params["processing"] == ["meridian | stativ", "nord | lumina"]
    assert params["stage0.magnification"].tolist() == pytest.approx([1.07, 1.14])  # rows in the scanners' order


def test_a_unit_sharing_the_reference_models_processing_is_left_to_the_detector_stage():
    # The reference's model with another detector, at 0.2 mm (Nyquist 2.5 cycles/mm): its tone and processing are the
    # reference's by definition, so the chain leaves it as it is; the detector stage alone matches its detector band
    # (above 0.5-1 cycles/mm).
    fine = Acquisition("meridian | stativ | direct | 0.200 mm | monochrome1", "meridian | stativ", 0.2, 1.07)
    csi = Acquisition("meridian | stativ | scintillator | 0.200 mm | monochrome1", "meridian | stativ", 0.2, 1.07)

    def rendered(field: np.ndarray, acquisition: Acquisition, seed: int) -> np.ndarray:
        if acquisition is csi:
            field = ndimage.gaussian_filter(field, 1.5)  # the scintillator's blur, at 0.2 mm pixels
        noisy = 1 / (1 + np.exp(-0.6 * field)) + np.random.default_rng(seed).normal(0, 0.004, field.shape)
        return np.clip(np.rint(noisy * 4000), 0, 4095).astype(np.uint16)

    images = [(rendered(anatomy(p), fine, p), fine, True) for p in range(24)]
    images += [(rendered(anatomy(p), csi, p), csi, False) for p in range(24, 48)]
    params = scanners.fit("physics", lambda: iter(images))
    assert params["processing"] == ["meridian | stativ"] * 2
    # The model's row is the reference scanner's own, not a mix of the model's units.
    alone = scanners.fit("tone", lambda: iter(images[:24]))
    np.testing.assert_allclose(params["stage1.quantiles"][0], alone["stage0.quantiles"][0])
    for stage in (1, 2, 3):  # tone, transfer, tone: one pooled group, the same row for both scanners
        for key in ("quantiles", "density"):
            if f"stage{stage}.{key}" in params:
                rows = params[f"stage{stage}.{key}"]
                np.testing.assert_array_equal(rows[0], rows[1])
    image = rendered(anatomy(500), csi, 500)
    assert np.array_equal(scanners.apply(image, csi, params), image)
    detector = scanners.fit("detector", lambda: iter(images))
    harmonized = scanners.apply(image, csi, detector).astype(np.float64)
    truth = rendered(anatomy(500), fine, 500).astype(np.float64)
    span = truth.max() - truth.min()
    before = peak_signal_noise_ratio(truth, image.astype(np.float64), data_range=span)
    assert peak_signal_noise_ratio(truth, harmonized, data_range=span) > before + 3.0


def test_the_fit_does_not_depend_on_how_the_images_were_batched():
    images = stream(range(24), REFERENCE, True) + stream(range(24, 48), OTHER, False)
    whole = scanners.summarize_pass("transfer", 0, None, images)
    parts = [scanners.summarize_pass("transfer", 0, None, images[i : i + 10]) for i in range(0, len(images), 10)]
    one, merged = scanners.finish_pass("transfer", 0, None, [whole]), scanners.finish_pass("transfer", 0, None, parts)
    np.testing.assert_allclose(one["stage0.density"], merged["stage0.density"], rtol=1e-10)


def test_parameters_survive_the_warehouse_json(fitted):
    params = fitted["physics"]
    again = params_from_json(params_to_json(params))
    image = render(anatomy(300), OTHER, 300)
    np.testing.assert_array_equal(scanners.apply(image, OTHER, params), scanners.apply(image, OTHER, again))
    assert json.loads(params_to_json(params))["scanners"] == params["scanners"]


def test_parameters_of_another_version_are_refused(fitted):
    stale = {**fitted["physics"], "version": scanners.VERSION - 1}
    with pytest.raises(ValueError, match=f"fitted by version {scanners.VERSION - 1} .* fit them again"):
        scanners.apply(render(anatomy(1), OTHER, 1), OTHER, stale)


def test_images_the_fit_cannot_serve_fall_back_explicitly(fitted):
    params = fitted["physics"]
    image = render(anatomy(400), OTHER, 400)
    unknown = Acquisition("castell | cm-2000 | ? | 0.200 mm | monochrome2", "castell | cm-2000", 0.2, None)
    assert scanners.apply(image, unknown, params) is image
    assert scanners.fallback_reason(params, unknown).startswith("scanner not fitted (castell | cm-2000")
    no_spacing = Acquisition(OTHER.scanner, OTHER.processing, None, OTHER.magnification)
    assert "no pixel_spacing_mm in the header: the transfer stage" in scanners.fallback_reason(params, no_spacing)
    assert scanners.fallback_reason(params, OTHER) is None
    # Without its spacing the transfer stage is skipped, the others still run.
    skipped = scanners.apply(image, no_spacing, params)
    assert not np.array_equal(skipped, image) and not np.array_equal(skipped, scanners.apply(image, OTHER, params))


def test_a_stage_no_fit_image_could_take_is_marked_and_skipped():
    # No image carries a magnification: the geometry stage is fitted for no scanner, and says so.
    images = stream(range(24), REFERENCE, True) + stream(range(24, 48), OTHER, False)
    images = [(image, Acquisition(a.scanner, a.processing, a.pixel_spacing_mm, None), r) for image, a, r in images]
    params = scanners.fit("physics", lambda: iter(images))
    assert params["stage0.fitted"].tolist() == [0.0, 0.0]
    reason = scanners.fallback_reason(params, images[-1][1])
    assert reason == "the geometry stage was not fitted for this scanner (no fit image had its magnification)"


def test_too_few_reference_images_is_one_clear_error():
    images = stream(range(5), REFERENCE, True) + stream(range(5, 35), OTHER, False)
    with pytest.raises(ValueError, match=r"needs a scanner with at least 20 images among the reference images"):
        scanners.fit("tone", lambda: iter(images))


# ----------------------------------------------------------------------------------------------------------------------
# Headers and files


def dicom_file(folder, index: int, pixels: np.ndarray, *, manufacturer: str, magnification: float | None):
    header = DxHeader(
        dicom_id=f"img{index:03d}",
        subject_id=10000000 + index,
        study_id=50000000 + index,
        sex="F",
        acquired=datetime(2150, 1, 1),
        study_instance_uid=f"1.2.3.{index}",
        procedure="CHEST (PA AND LAT)",
        view_position="PA",
        orientation="Erect",
        manufacturer=manufacturer,
        model="Unit 1",
        charset="ISO_IR 100",
        photometric="MONOCHROME2",
        bits_stored=12,
        pixel_spacing_mm=SPACING_MM,
        kvp=110.0,
        detector_type="DIRECT",
        exposure_mas=3,
        exposure_time_ms=10,
        tube_current_ma=None,
        exposure_in_mas=None,
        exposure_time_in_us=None,
        source_to_detector_mm=1800.0 if magnification else None,
        source_to_patient_mm=1800.0 / magnification if magnification else None,
        magnification=magnification,
    )
    path = folder / f"{header.dicom_id}.dcm"
    path.write_bytes(dx_bytes(header, pixels))
    return path


def test_fitting_and_applying_through_real_dicom_files(tmp_path):
    references = [
        dicom_file(tmp_path, p, render(anatomy(p), REFERENCE, p), manufacturer="Meridian", magnification=1.07)
        for p in range(22)
    ]
    others = [
        dicom_file(tmp_path, p, render(anatomy(p), OTHER, p), manufacturer="Nord", magnification=1.14)
        for p in range(22, 44)
    ]
    params = fit_parameters("physics", references, partial(in_this_process), other_paths=others)
    assert params["reference_scanner"] == "meridian | unit 1 | direct | 1.000 mm | monochrome2"
    harmonization = Harmonization("physics", params_from_json(params_to_json(params)))
    held_out = dicom_file(tmp_path, 99, render(anatomy(99), OTHER, 99), manufacturer="Nord", magnification=1.14)
    ((sha256, size, fallback),) = apply_batch(harmonization, [(held_out, tmp_path / "out.png")])
    assert fallback is None and size > 0
    dataset = pydicom.dcmread(held_out)
    expected = scanners.apply(dataset.pixel_array, acquisition_of(dataset), params)
    assert np.abs(read_png16(tmp_path / "out.png").astype(float) - np.rint(expected)).max() <= 1
    stranger = dicom_file(tmp_path, 98, render(anatomy(98), OTHER, 98), manufacturer="Castell", magnification=None)
    ((_, _, fallback),) = apply_batch(harmonization, [(stranger, tmp_path / "stranger.png")])
    assert fallback.startswith("scanner not fitted (castell | unit 1")
    with pytest.raises(ValueError, match="reads the image's header"):
        harmonization(pydicom.dcmread(held_out).pixel_array)


def test_a_real_archive_header_gives_its_signature_and_no_invented_geometry():
    # pydicom-data's RG1: a Philips CR with PixelSpacing 0\0 and DistanceSourceToDetector but no source-to-patient
    # distance: no spacing and no magnification, rather than a guess.
    dataset = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"), stop_before_pixels=True)
    acquisition = acquisition_of(dataset)
    assert acquisition.scanner.startswith("philips medical systems | cassette holder type 9840 500 70201 |")
    assert acquisition.scanner.endswith("| monochrome1")
    assert acquisition.pixel_spacing_mm is None and acquisition.magnification is None
    dataset.EstimatedRadiographicMagnificationFactor = "0"  # the sentinel some archives write for unknown
    dataset.DistanceSourceToPatient = "1800"
    assert acquisition_of(dataset).magnification == pytest.approx(1996 / 1800)
