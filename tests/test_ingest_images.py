"""DICOM to analysis image: modality LUT, MONOCHROME1 inversion, windowing, aspect-preserving resize, the cache."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from ingest.images import (
    ImageCache,
    Preprocessing,
    analysis_image,
    fill_cache,
    pixel_spacing_mm,
    preprocess,
    presentation_values,
)
from tests.conftest import FILES
from xrh.batches import local_processes


@pytest.fixture()
def dataset(simulated):
    root, _ = simulated
    return pydicom.dcmread(next((root / FILES / "mimic-cxr/2.1.0/files").rglob("*.dcm")))


def test_monochrome1_is_inverted_so_dense_is_bright(dataset):
    as_stored = presentation_values(dataset)
    flipped = dataset.copy()
    flipped.PhotometricInterpretation = (
        "MONOCHROME2" if dataset.PhotometricInterpretation == "MONOCHROME1" else "MONOCHROME1"
    )
    maximum = (1 << dataset.BitsStored) - 1
    flipped.PixelData = (maximum - dataset.pixel_array).astype(np.uint16).tobytes()
    other = presentation_values(flipped)
    # Both files show the same picture, so after inversion they differ only by a constant offset.
    difference = as_stored - other
    assert np.allclose(difference, difference.flat[0])


def test_rescale_slope_and_intercept_are_applied(dataset):
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.RescaleSlope, dataset.RescaleIntercept = 2, -100
    assert np.array_equal(presentation_values(dataset), dataset.pixel_array * 2.0 - 100)


def test_the_whole_frame_keeps_its_aspect_and_is_padded_with_zeros():
    image = np.tile(np.linspace(1.0, 2.0, 300, dtype=np.float32)[:, None], (1, 150))
    square = analysis_image(image, Preprocessing(size=64, window="minmax"))
    assert square.shape == (64, 64)
    assert np.all(square[:, 16:48] > 0) and np.all(square[:, :16] == 0) and np.all(square[:, 48:] == 0)


@pytest.mark.parametrize("window", ["percentile", "minmax"])
@pytest.mark.parametrize("equalize", [False, True])
def test_preprocess_gives_unit_range_square_images(dataset, window, equalize):
    image = preprocess(dataset, Preprocessing(size=48, window=window, equalize=equalize))
    assert image.shape == (48, 48) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.9


def test_compressed_pixels_decode_like_uncompressed(dataset):
    compressed = dataset.copy()
    compressed.compress(RLELossless)
    settings = Preprocessing(size=32)
    assert np.array_equal(preprocess(compressed, settings), preprocess(dataset, settings))


def test_cache_stores_once_per_preprocessing_and_variant(simulated, tmp_path):
    root, _ = simulated
    paths = sorted((root / FILES / "mimic-cxr/2.1.0/files").rglob("*.dcm"))[:6]
    images = [(path.stem, path) for path in paths]
    small, large = Preprocessing(size=32), Preprocessing(size=40)
    assert small.key() != large.key()
    with local_processes(2) as map_batches:
        cached, errors = fill_cache(ImageCache(tmp_path, small), images, map_batches=map_batches)
    assert (cached, errors) == (6, [])
    cache = ImageCache(tmp_path, small)
    assert fill_cache(cache, images) == (0, [])
    expected = preprocess(pydicom.dcmread(paths[0]), small)
    assert np.allclose(cache.load(paths[0].stem), expected, atol=1 / 65535)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file")
    cached, errors = fill_cache(ImageCache(tmp_path, large), [("broken", broken)])
    assert cached == 0 and "broken.dcm" in errors[0]
    cached, errors = fill_cache(ImageCache(tmp_path, large), [*images, ("broken", broken)])
    assert cached == 6 and len(errors) == 1
    expected = preprocess(pydicom.dcmread(paths[0]), large)
    assert np.allclose(ImageCache(tmp_path, large).load(paths[0].stem), expected, atol=1 / 65535)
    inverted = ImageCache(tmp_path, small, variant="inverted")
    assert inverted.folder != cache.folder and paths[0].stem not in inverted
    fill_cache(inverted, images[:1], transform=negated)
    centre = (slice(12, 20), slice(12, 20))  # the image, not the padding (zero in both)
    assert np.allclose(inverted.load(paths[0].stem)[centre], 1.0 - cache.load(paths[0].stem)[centre], atol=0.02)


def test_one_decode_fills_several_caches_as_each_alone(simulated, tmp_path):
    root, _ = simulated
    paths = sorted((root / FILES / "mimic-cxr/2.1.0/files").rglob("*.dcm"))[:4]
    images = [(path.stem, path) for path in paths]
    frame, field = Preprocessing(size=32), Preprocessing(size=32, field_mm=200.0, equalize=True, window="minmax")
    together = [ImageCache(tmp_path / "together", p) for p in (frame, field)]
    assert fill_cache(together, images) == (4, [])
    assert fill_cache(together, images) == (0, [])  # nothing left to do in either
    for preprocessing, cache in zip((frame, field), together, strict=True):
        alone = ImageCache(tmp_path / "alone", preprocessing)
        fill_cache(alone, images)
        assert all(np.array_equal(cache.load(i), alone.load(i)) for i, _ in images)


def test_a_field_in_mm_is_the_same_anatomy_at_any_spacing_and_pads_past_the_detector():
    # A 300 mm detector at 0.5 mm (600 px) and the same picture at 0.25 mm (1200 px): a 200 mm field is the same pixels.
    rng = np.random.default_rng(0)
    coarse = rng.random((600, 600)).astype(np.float32)
    fine = np.kron(coarse, np.ones((2, 2), dtype=np.float32))
    settings = Preprocessing(size=40, field_mm=200.0)
    one, two = analysis_image(coarse, settings, (0.5, 0.5)), analysis_image(fine, settings, (0.25, 0.25))
    assert one.shape == (40, 40) and np.allclose(one, two, atol=1e-5)
    # A 400 mm field on the 300 mm detector: the 50 mm on each side beyond it are zero.
    wide = analysis_image(coarse, Preprocessing(size=40, field_mm=400.0), (0.5, 0.5))
    assert np.all(wide[:, :5] == 0) and np.all(wide[:, -5:] == 0) and np.all(wide[5:-5, 5:-5] > 0)
    with pytest.raises(ValueError, match="no PixelSpacing or ImagerPixelSpacing"):
        analysis_image(coarse, settings, None)


def test_spacing_comes_from_pixel_spacing_else_the_imagers(dataset):
    dataset.PixelSpacing, dataset.ImagerPixelSpacing = [0.2, 0.3], [0.15, 0.15]
    assert pixel_spacing_mm(dataset) == (0.2, 0.3)
    dataset.PixelSpacing = [0, 0]  # "not recorded", as real archives write it
    assert pixel_spacing_mm(dataset) == (0.15, 0.15)
    dataset.ImagerPixelSpacing = ""  # an empty value, as some archives write
    assert pixel_spacing_mm(dataset) is None


def test_equalized_images_have_a_flat_histogram_whatever_the_tone_and_keep_their_padding():
    rng = np.random.default_rng(1)
    # Constant 2 x 2 blocks, so the resize averages equal values and the tone curve commutes with it.
    image = np.kron(rng.random((64, 32)), np.ones((2, 2))).astype(np.float32)
    settings = Preprocessing(size=64, equalize=True)
    flat, toned = analysis_image(image, settings), analysis_image(image**3, settings)
    assert np.allclose(flat, toned, atol=1e-6)  # a monotone tone curve leaves nothing behind
    inside = flat[:, 16:48]
    assert np.all(flat[:, :16] == 0) and abs(np.quantile(inside, 0.5) - 0.5) < 0.02


def test_equalized_values_are_all_distinct_even_where_pixels_tie():
    image = np.kron(np.arange(16, dtype=np.float32).reshape(4, 4), np.ones((2, 2), dtype=np.float32))  # 4-way ties
    flat = analysis_image(image, Preprocessing(size=8, window="minmax", equalize=True))
    assert len(np.unique(flat)) == 64 and np.allclose(np.sort(flat.ravel()), (np.arange(64) + 0.5) / 64)


def negated(values: np.ndarray, dataset: pydicom.Dataset) -> np.ndarray:
    """A transform of presentation values (it is also given the image's dataset)."""
    return -values.astype(np.float32)
