"""Each harmonization method's defining property, across dtypes, and exact round trips of its parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft

from harmonize import combat, distribution, fourier, intensity
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


def body_quantiles(image: np.ndarray, levels) -> np.ndarray:
    return weighted_quantiles(*body_values(image), np.asarray(levels))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_cdf_matching_gives_the_reference_quantiles(dtype):
    params = distribution.fit_quantiles(REFERENCES)
    source = radiograph(9, mean=2600, spread=250, dtype=dtype)
    matched = distribution.apply_cdf_matching(source, params)
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    body = matched[20:-20, 15:-15]
    expected = np.interp(levels, params["levels"], params["quantiles"])
    assert np.allclose(np.quantile(body, levels), expected, rtol=0.01)


def test_cdf_matching_is_monotone_and_leaves_a_reference_image_about_unchanged():
    image = REFERENCES[0]
    params = distribution.fit_quantiles([image])
    matched = distribution.apply_cdf_matching(image, params)
    body = (slice(20, -20), slice(15, -15))
    assert np.abs(matched[body].astype(float) - image[body]).mean() < 0.003 * image[body].mean()
    order = np.argsort(image[body].ravel(), kind="stable")
    assert np.all(np.diff(matched[body].ravel()[order]) >= 0)


def test_subsampled_cdf_is_close_to_exact():
    params = distribution.fit_quantiles(REFERENCES)
    source = radiograph(4, mean=2500)
    exact = distribution.apply_cdf_matching(source, params).astype(float)
    subsampled = distribution.apply_cdf_matching(source, params, step=2).astype(float)
    assert np.abs(exact - subsampled)[20:-20, 15:-15].mean() < 0.01 * exact[20:-20, 15:-15].mean()  # 1% on a tiny image


def test_landmarks_map_onto_the_standard_scale():
    params = distribution.fit_landmarks(REFERENCES)
    mapped = distribution.apply_landmarks(radiograph(5, mean=2700, spread=300), params)
    assert np.allclose(body_quantiles(mapped, params["percentiles"] / 100), params["landmarks"], rtol=0.02)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_intensity_methods_match_range_percentiles_and_moments(dtype):
    params = intensity.fit([r.astype(dtype) for r in REFERENCES])
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
    params = fourier.fit_fda(REFERENCES)
    source = radiograph(7, mean=2500).astype(np.float32)
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
    params = fourier.fit_band_energies(REFERENCES)
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


def test_image_methods_are_finite_on_any_image_even_a_flat_one():
    flat = np.full((64, 48), 700, dtype=np.uint16)
    fitted = {
        "minmax": (intensity.apply_minmax, intensity.fit(REFERENCES)),
        "window": (intensity.apply_percentile_window, intensity.fit(REFERENCES)),
        "zscore": (intensity.apply_zscore, intensity.fit(REFERENCES)),
        "cdf": (distribution.apply_cdf_matching, distribution.fit_quantiles(REFERENCES)),
        "landmarks": (distribution.apply_landmarks, distribution.fit_landmarks(REFERENCES)),
        "fda": (fourier.apply_fda, fourier.fit_fda(REFERENCES)),
        "bands": (fourier.apply_band_equalization, fourier.fit_band_energies(REFERENCES)),
    }
    for name, (method, params) in fitted.items():
        for image in (flat, radiograph(11, mean=300, spread=50)):
            assert np.isfinite(method(image, params)).all(), name


@pytest.mark.parametrize(
    "fit",
    [intensity.fit, distribution.fit_quantiles, distribution.fit_landmarks, fourier.fit_fda, fourier.fit_band_energies],
)
def test_parameters_round_trip_through_json_exactly(fit):
    params = fit(REFERENCES)
    again = params_from_json(params_to_json(params))
    assert params.keys() == again.keys()
    for key, value in params.items():
        assert np.array_equal(np.asarray(value), np.asarray(again[key])), key


@pytest.mark.parametrize("name", sorted(IMAGE_METHODS))
def test_every_registered_method_harmonizes_a_real_chest_radiograph(name):
    """pydicom-data's RG1 (a Philips CR PA chest, MONOCHROME1, 15 bits): fitted on it, each method brings a copy with
    its contrast halved back to an image of the same shape, finite, and changed."""
    from pydicom.data import get_testdata_file

    from harmonize.fitting import load_values

    original = load_values(get_testdata_file("RG1_UNCR.dcm"))[::4, ::4]  # every fourth pixel: fast, still real
    low_contrast = (original.astype(np.float64) / 2 + 1000).astype(original.dtype)
    method = IMAGE_METHODS[name]
    harmonized = method.apply(low_contrast, method.fit([original, original]))
    assert harmonized.shape == original.shape and np.isfinite(harmonized).all()
    assert not np.array_equal(np.asarray(harmonized, dtype=np.float64), low_contrast.astype(np.float64))
