"""Each harmonization method's defining property, across dtypes; fits streamed from per-image summaries equal to the
list-based means, in any batching, in constant memory; fast FFT sizes; the thread setting; exact parameter round
trips."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from scipy import fft

from harmonize import combat, common, distribution, fourier, intensity, scanners
from harmonize.common import body_values, params_from_json, params_to_json, weighted_quantiles
from harmonize.methods import IMAGE_METHODS


def radiograph(seed: int, *, mean: float = 2000, spread: float = 400, dtype=np.uint16, shape=(160, 128)) -> np.ndarray:
    """A dark background (air, shutters) around a textured bright body, like a presentation-value radiograph."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, 100.0)
    rows, cols = shape
    body = rng.normal(mean, spread, (rows - 40, cols - 30))
    image[20 : rows - 20, 15 : cols - 15] = body
    image = np.clip(image, 0, 4095)
    return image.astype(dtype) if dtype != np.float32 else image.astype(np.float32)


REFERENCES = [radiograph(seed) for seed in range(3)]
PRIME_SHAPE = (127, 131)  # both sides prime: padded to fast FFT lengths
# References of several sizes, the largest FDA block first: merging FDA summaries crops to the smallest.
MIXED = [
    radiograph(seed, mean=1700 + 150 * seed, shape=shape)
    for seed, shape in enumerate([(150, 144), PRIME_SHAPE, (160, 128), (131, 160), (160, 128), (140, 139)])
]


def body_quantiles(image: np.ndarray, levels) -> np.ndarray:
    return weighted_quantiles(*body_values(image), np.asarray(levels))


def fitted(name: str, images=REFERENCES):
    return IMAGE_METHODS[name].fit(images)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_cdf_matching_gives_the_reference_quantiles(dtype):
    params = fitted("cdf")
    source = radiograph(9, mean=2600, spread=250, dtype=dtype)
    matched = distribution.apply_cdf_matching(source, params)
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    body = matched[20:-20, 15:-15]
    expected = np.interp(levels, params["levels"], params["quantiles"])
    assert np.allclose(np.quantile(body, levels), expected, rtol=0.01)


def test_cdf_matching_is_monotone_and_leaves_a_reference_image_about_unchanged():
    image = REFERENCES[0]
    params = fitted("cdf", [image])
    matched = distribution.apply_cdf_matching(image, params)
    body = (slice(20, -20), slice(15, -15))
    assert np.abs(matched[body].astype(float) - image[body]).mean() < 0.003 * image[body].mean()
    order = np.argsort(image[body].ravel(), kind="stable")
    assert np.all(np.diff(matched[body].ravel()[order]) >= 0)


def test_subsampled_cdf_is_close_to_exact():
    params = fitted("cdf")
    source = radiograph(4, mean=2500)
    exact = distribution.apply_cdf_matching(source, params).astype(float)
    subsampled = distribution.apply_cdf_matching(source, params, step=2).astype(float)
    assert np.abs(exact - subsampled)[20:-20, 15:-15].mean() < 0.01 * exact[20:-20, 15:-15].mean()  # 1% on a tiny image


def test_landmarks_map_onto_the_standard_scale():
    params = fitted("nyul")
    mapped = distribution.apply_landmarks(radiograph(5, mean=2700, spread=300), params)
    assert np.allclose(body_quantiles(mapped, params["percentiles"] / 100), params["landmarks"], rtol=0.02)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_intensity_methods_match_range_percentiles_and_moments(dtype):
    params = fitted("zscore", (r.astype(dtype) for r in REFERENCES))
    source = radiograph(6, mean=1200, spread=150, dtype=dtype)
    minmax = intensity.apply_minmax(source, params)
    assert minmax.min() == pytest.approx(params["min"], abs=1e-3)
    assert minmax.max() == pytest.approx(params["max"], abs=0.5)
    window = intensity.apply_percentile_window(source, params)
    low, high = np.quantile(window[20:-20, 15:-15], params["percentiles"] / 100)
    assert low == pytest.approx(params["low"], rel=0.02) and high == pytest.approx(params["high"], rel=0.02)
    zscored = intensity.apply_zscore(source, params)[20:-20, 15:-15]
    assert zscored.mean() == pytest.approx(params["mean"], rel=0.02)
    assert zscored.std() == pytest.approx(params["std"], rel=0.05)


def test_fda_keeps_the_phase_and_sets_the_low_frequency_amplitude():
    params = fitted("fda")
    source = radiograph(7, mean=2500).astype(np.float32)
    source[80, 64] = -1.0  # the minimum inside: no shutter border, so the transform is of the image itself
    out = fourier.apply_fda(source, params, beta=0.05, clip=False)
    before, after = fft.rfft2(source), fft.rfft2(out)
    strong = np.abs(before) > 1e-3 * np.abs(before).max()
    unit = lambda z: z / np.abs(z)  # noqa: E731 - compare phases as unit vectors (no wrap-around at pi)
    assert np.allclose(unit(after[strong]), unit(before[strong]), atol=1e-3)
    half_width = int(np.floor(0.05 * min(source.shape)))
    assert np.allclose(
        np.abs(after[: half_width + 1, : half_width + 1]) / source.size,
        params["amplitude"][: half_width + 1, : half_width + 1],
        rtol=1e-3,
    )
    assert not np.allclose(out, source)


def test_band_equalization_matches_band_energies():
    params = fitted("bands")
    noisy = radiograph(8, spread=900).astype(np.float32)
    out = fourier.apply_band_equalization(noisy, params, clip=False)
    assert np.allclose(fourier.band_energies(out), params["energies"], rtol=0.05)


def test_combat_removes_a_site_shift_and_keeps_a_covariate_effect():
    rng = np.random.default_rng(0)
    n, p = 600, 12
    site = rng.choice(["A", "B", "C"], n)
    age = rng.normal(size=n)
    noise = rng.normal(size=(n, p))
    noise[site == "C"] *= 2.0
    effect = 2.0 * np.linspace(0, 1, p)
    features = noise + np.where(site == "B", 3.0, 0.0)[:, None] + age[:, None] * effect
    params = combat.fit(features, site, age[:, None])
    adjusted = combat.apply(features, site, params, age[:, None])
    slope = np.linalg.lstsq(np.c_[np.ones(n), age], adjusted, rcond=None)[0][1]
    assert np.allclose(slope, effect, atol=0.15)
    residual = adjusted - age[:, None] * slope
    means = [residual[site == s].mean() for s in "ABC"]
    spreads = [residual[site == s].std() for s in "ABC"]
    assert np.ptp(means) < 0.1 and np.ptp(spreads) < 0.1
    reference = combat.fit(features, site, age[:, None], reference="A")
    kept = combat.apply(features[site == "A"], site[site == "A"], reference, age[site == "A", None])
    assert np.allclose(kept, features[site == "A"])


@pytest.mark.parametrize("rows", [1, 4])
def test_combat_gives_finite_output_for_unseen_scanners(rows):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 5))
    params = combat.fit(features, np.repeat(["A", "B"], 30))
    out = combat.apply(rng.normal(5, 2, size=(rows, 5)), np.array(["new"] * rows), params)
    assert out.shape == (rows, 5) and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_image_methods_are_finite_on_any_image_even_a_flat_one_or_one_with_prime_sides(name):
    method = IMAGE_METHODS[name]
    params = method.fit(REFERENCES)
    flat = np.full((64, 48), 700, dtype=np.uint16)
    for image in (flat, radiograph(11, mean=300, spread=50), radiograph(12, shape=PRIME_SHAPE)):
        out = method.apply(image, params)
        assert out.shape == image.shape and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_parameters_round_trip_through_json_exactly(name):
    params = fitted(name)
    again = params_from_json(params_to_json(params))
    assert params.keys() == again.keys()
    for key, value in params.items():
        assert np.array_equal(np.asarray(value), np.asarray(again[key])), key


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_every_registered_method_harmonizes_a_real_chest_radiograph(name):
    """pydicom-data's RG1 (a Philips CR PA chest, MONOCHROME1, 15 bits): fitted on it, each method brings a copy with
    its contrast halved back to an image of the same shape, finite, and changed."""
    from pydicom.data import get_testdata_file

    from ingest.images import load_values

    original = load_values(get_testdata_file("RG1_UNCR.dcm"))[::4, ::4]  # every fourth pixel: fast, still real
    low_contrast = (original.astype(np.float64) / 2 + 1000).astype(original.dtype)
    method = IMAGE_METHODS[name]
    harmonized = method.apply(low_contrast, method.fit([original, original]))
    assert harmonized.shape == original.shape and np.isfinite(harmonized).all()
    assert not np.array_equal(np.asarray(harmonized, dtype=np.float64), low_contrast.astype(np.float64))


# Fits streamed from summaries, against the list-based definitions they replace (written out here as they were).


def old_statistics(images: list[np.ndarray]) -> dict:
    stats = []
    for image in images:
        values, counts = body_values(image)
        low, high = weighted_quantiles(values, counts, np.array(intensity.PERCENTILES) / 100.0)
        mean = np.average(values, weights=counts)
        std = np.sqrt(np.average((values - mean) ** 2, weights=counts))
        stats.append((image.min(), image.max(), low, high, mean, std))
    minimum, maximum, low, high, mean, std = np.mean(np.array(stats, dtype=np.float64), axis=0)
    return {
        "min": minimum,
        "max": maximum,
        "low": low,
        "high": high,
        "mean": mean,
        "std": std,
        "percentiles": np.array(intensity.PERCENTILES),
    }


def old_quantiles(images: list[np.ndarray]) -> dict:
    functions = [body_quantiles(image, distribution.LEVELS) for image in images]
    return {"levels": distribution.LEVELS, "quantiles": np.mean(functions, axis=0)}


def old_landmarks(images: list[np.ndarray]) -> dict:
    landmarks = np.array([body_quantiles(image, distribution.LANDMARK_PERCENTILES / 100) for image in images])
    low, high = landmarks[:, 0].mean(), landmarks[:, -1].mean()
    spans = np.maximum(landmarks[:, -1] - landmarks[:, 0], 1e-12)
    scaled = low + (landmarks - landmarks[:, :1]) / spans[:, None] * (high - low)
    return {"percentiles": distribution.LANDMARK_PERCENTILES, "landmarks": scaled.mean(axis=0)}


def border_filled(image: np.ndarray) -> np.ndarray:
    """The test radiograph's dark frame (a shutter border round a rectangular field) filled with the field's edge
    values, written out with np.pad."""
    rows, cols = np.flatnonzero((image != image.min()).any(axis=1)), np.flatnonzero((image != image.min()).any(axis=0))
    field = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    widths = [(rows[0], image.shape[0] - rows[-1] - 1), (cols[0], image.shape[1] - cols[-1] - 1)]
    return np.pad(field, widths, mode="edge")


def padded_spectrum(image: np.ndarray) -> np.ndarray:
    """rfft2 of the image, its border filled, mirrored at its bottom and right to fast FFT lengths, with np.pad."""
    shape = [fft.next_fast_len(n, real=True) for n in image.shape]
    widths = [(0, padded - n) for padded, n in zip(shape, image.shape, strict=True)]
    return fft.rfft2(np.pad(border_filled(image).astype(np.float32), widths, mode="symmetric")), shape[0] * shape[1]


def old_fda(images: list[np.ndarray]) -> dict:
    half_width = min(int(np.floor(fourier.BETA_MAX * min(image.shape))) for image in images)
    blocks = []
    for image in images:
        spectrum, size = padded_spectrum(image)
        rows = np.r_[0 : half_width + 1, len(spectrum) - half_width : len(spectrum)]
        blocks.append(np.abs(spectrum[np.ix_(rows, np.arange(half_width + 1))]) / size)
    return {"amplitude": np.mean(np.array(blocks, dtype=np.float64), axis=0), "half_width": half_width}


def old_bands(images: list[np.ndarray]) -> dict:
    """Each band's mean energy over the images whose sample of coefficients reaches it."""
    measured = [
        fourier._band_energies(fft.rfft2(fourier.pad_for_fft(border_filled(i))), fourier.padded_shape(i.shape))
        for i in images
    ]
    energies, sampled = np.array([e for e, _ in measured]), np.array([c > 0 for _, c in measured])
    return {"band_edges": fourier.BAND_EDGES, "energies": energies.sum(axis=0) / np.maximum(sampled.sum(axis=0), 1)}


OLD_FITS = {
    "minmax": old_statistics,
    "percentile": old_statistics,
    "zscore": old_statistics,
    "cdf": old_quantiles,
    "cdf_subsampled": old_quantiles,
    "nyul": old_landmarks,
    "fda": old_fda,
    "bands": old_bands,
}


def assert_params_close(actual: dict, expected: dict, *, rtol: float) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(value), rtol=rtol, atol=0, err_msg=key)


def test_every_method_has_a_list_based_definition_to_compare_with():
    assert OLD_FITS.keys() == IMAGE_METHODS.keys()


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_a_fit_streamed_from_a_generator_equals_the_mean_over_a_list(name):
    params = IMAGE_METHODS[name].fit(image for image in MIXED)
    assert_params_close(params, OLD_FITS[name](MIXED), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_batch_summaries_merge_to_the_same_parameters_however_the_images_are_batched(name):
    method = IMAGE_METHODS[name]
    whole = method.fit(MIXED)
    for size in (1, 2, 3, 4):
        batches = [MIXED[start : start + size] for start in range(0, len(MIXED), size)]
        # through pickle, as the summaries of batches come back from worker processes
        summaries = (pickle.loads(pickle.dumps(method.summarize_all(batch))) for batch in batches)
        assert_params_close(method.fit_summaries(summaries), whole, rtol=1e-12)


def test_fda_summaries_of_different_sizes_merge_by_cropping_to_the_smaller_block():
    small, large = radiograph(15, shape=PRIME_SHAPE), radiograph(16, shape=(300, 280))
    summaries = [fourier.summarize_fda(image) for image in (small, large)]
    assert [summary["amplitude_sum"].shape for summary in summaries] == [(23, 12), (51, 26)]  # floor(0.09 * side)
    forward = fourier.finish_fda(fourier.combine_fda(*summaries))
    backward = fourier.finish_fda(fourier.combine_fda(*summaries[::-1]))
    assert forward["half_width"] == backward["half_width"] == 11
    assert np.array_equal(forward["amplitude"], backward["amplitude"])
    assert_params_close(forward, old_fda([small, large]), rtol=1e-9)
    assert fourier.apply_fda(large, forward, beta=0.05).shape == large.shape


def test_fitting_needs_a_reference_image_and_summaries_of_one_method():
    with pytest.raises(ValueError, match="at least one reference image"):
        IMAGE_METHODS["cdf"].fit(iter([]))
    with pytest.raises(ValueError, match="at least one reference image"):
        IMAGE_METHODS["fda"].fit_summaries([])
    with pytest.raises(ValueError, match="different keys"):
        common.add_summaries(
            distribution.summarize_quantiles(REFERENCES[0]), distribution.summarize_landmarks(REFERENCES[0])
        )


def fda_fit_peak_bytes(count: int) -> int:
    """tracemalloc's peak while fitting FDA on ``count`` 512x512 images, made one at a time by a generator."""
    base = radiograph(17, shape=(512, 512), dtype=np.float32)
    tracemalloc.start()
    try:
        IMAGE_METHODS["fda"].fit(base + np.float32(seed) for seed in range(count))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fitting_keeps_memory_flat_however_many_images_it_reads():
    fda_fit_peak_bytes(1)  # warm up: first-call allocations are no part of a fit's memory
    few, many = fda_fit_peak_bytes(5), fda_fit_peak_bytes(20)
    assert many <= 1.25 * few  # one 512x512 float32 image is 1 MiB: keeping 20 would add 15 MiB to a few MiB


# Fast FFT sizes.


@pytest.mark.parametrize("shape", [PRIME_SHAPE, (7, 11), (160, 128), (1, 1)])
def test_images_are_padded_to_fast_lengths_by_mirroring(shape):
    image = (
        radiograph(18, shape=shape) if min(shape) > 40 else np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    )
    padded_rows, padded_cols = fourier.padded_shape(shape)
    assert (padded_rows, padded_cols) == (
        fft.next_fast_len(shape[0], real=True),
        fft.next_fast_len(shape[1], real=True),
    )
    widths = [(0, padded_rows - shape[0]), (0, padded_cols - shape[1])]
    expected = np.pad(image.astype(np.float32), widths, mode="symmetric")
    assert np.array_equal(fourier.pad_for_fft(image), expected)


def test_fourier_methods_on_prime_sides_give_back_an_image_matched_to_itself():
    image = radiograph(13, shape=PRIME_SHAPE)
    assert fourier.padded_shape(image.shape) != image.shape  # the transform is padded
    tolerance = 1e-4 * float(image.max())  # float32 round trip
    own_amplitude = IMAGE_METHODS["fda"].fit([image])
    for beta in (1e-3, 0.01, 0.05, 0.09):
        out = fourier.apply_fda(image, own_amplitude, beta=beta, clip=False)
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.abs(out - image).max() < tolerance, beta
    out = fourier.apply_band_equalization(image, IMAGE_METHODS["bands"].fit([image]), clip=False)
    assert out.shape == image.shape and np.abs(out - image).max() < tolerance


def test_filters_do_not_ring_at_a_shutter_border_and_keep_it():
    """A flat field behind an electronic shutter's black border: a filter that triples the high frequencies, and FDA,
    must leave the field flat (no overshoot along its edge); every Fourier method leaves the border black."""
    image = np.zeros((96, 80), dtype=np.uint16)
    image[9:90, 13:71] = 1000  # shutters on all four sides, of different widths
    border = fourier.shutter_border(image)
    assert (border.top, border.bottom, border.first[50], border.last[50]) == (9, 89, 13, 70)
    sharpening = np.linspace(1.0, 3.0, scanners.RADIUS_STEPS)
    references = [radiograph(seed, shape=(96, 80)) for seed in range(2)]
    outputs = {
        "filter": scanners.apply_filter(image, sharpening),
        "bands": fourier.apply_band_equalization(image, fitted("bands", references), clip=False),
        "fda": fourier.apply_fda(image, fitted("fda", references), clip=False),
    }
    for name, out in outputs.items():
        field = out[9:90, 13:71]
        # Band equalization of a flat image scales its float32 round-off to the reference's band energies: not flat.
        assert name == "bands" or np.ptp(field) < 1e-3 * float(field.mean()), name
        outside = np.ones(image.shape, dtype=bool)
        outside[9:90, 13:71] = False
        assert np.all(out[outside] == 0), name
    assert fourier.shutter_border(radiograph(3, shape=(96, 80)) + 1) is not None  # its dark frame is a border too
    no_border = np.arange(96 * 80, dtype=np.float32).reshape(96, 80) + 1
    no_border[40, 40] = 0  # the minimum inside the field: not a border
    assert fourier.shutter_border(no_border) is None


def test_fda_with_beta_near_zero_on_prime_sides_only_shifts_the_image():
    image = radiograph(13, shape=PRIME_SHAPE, dtype=np.float32)
    out = fourier.apply_fda(image, fitted("fda", MIXED), beta=1e-3, clip=False)  # half-width 0: the mean alone
    field = image != image.min()  # inside the dark frame (a shutter border, which stays as it is)
    shift = (out - image)[field]
    assert np.isfinite(out).all() and abs(shift.mean()) > 1.0
    assert np.ptp(shift) < 1e-4 * float(image.max())
    assert np.all(out[~field] == image.min())


# The thread setting.


@pytest.fixture
def restore_threads():
    before = common.threads()
    yield
    common.set_threads(before)


@pytest.mark.parametrize("name", ["cdf", "bands", "fda"])
def test_results_do_not_depend_on_the_thread_count(name, restore_threads):
    method = IMAGE_METHODS[name]
    image = radiograph(14, shape=(257, 263))
    results = []
    for count in (1, 2):
        common.set_threads(count)
        assert common.threads() == count
        params = method.fit(MIXED)
        results.append((params, method.apply(image, params)))
    (params_one, out_one), (params_two, out_two) = results
    assert params_one.keys() == params_two.keys()
    assert all(np.array_equal(params_one[key], params_two[key]) for key in params_one)
    assert np.array_equal(out_one, out_two)


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_the_thread_count_is_a_positive_integer(count, restore_threads):
    with pytest.raises(ValueError, match="thread count"):
        common.set_threads(count)


def test_band_energies_of_mixed_sizes_average_each_band_over_the_images_that_sample_it():
    rng = np.random.default_rng(4)
    small, large = rng.normal(size=(96, 96)).cumsum(0), rng.normal(size=(600, 600)).cumsum(0)
    measured = [
        fourier._band_energies(fourier.image_spectrum(image)[0], fourier.padded_shape(image.shape))
        for image in (small, large)
    ]
    assert ((measured[0][1] == 0) & (measured[1][1] > 0)).any()  # the small image misses a band the large one sees
    fitted = IMAGE_METHODS["bands"].fit([small, large])["energies"]
    for band in range(len(fitted)):
        seen = [energies[band] for energies, counts in measured if counts[band] > 0]
        assert fitted[band] == pytest.approx(np.mean(seen) if seen else 0.0, rel=1e-12)
    out = fourier.apply_band_equalization(small.astype(np.float32), IMAGE_METHODS["bands"].fit([small]), clip=False)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("shape", [(64, 64), (48, 75), (75, 48)])
def test_the_two_pass_inverse_is_irfft2(shape):
    image = np.random.default_rng(3).random(shape).astype(np.float32)
    spectrum = fft.rfft2(image)
    expected = fft.irfft2(spectrum, s=shape)
    np.testing.assert_allclose(fourier.inverse_spectrum(spectrum.copy(), shape), expected, rtol=0, atol=1e-6)
