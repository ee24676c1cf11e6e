"""The feature statistics on synthetic features: MMD^2 with its standard error on bounded subsamples, the bounded
linear probe and silhouette, and the rows of ml_feature_analysis."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from models_ml import feature_statistics
from models_ml.feature_statistics import (
    _mmd_from_assignments,
    _mmd_variance,
    _squared_distances,
    feature_analysis,
    frechet_distance,
    mmd_rbf,
    patient_subsample,
)


def groups(size: int, shift: float, *, dimensions: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of standard normal features, the second shifted by ``shift`` in its first dimension."""
    rng = np.random.default_rng(seed)
    first = rng.normal(size=(size, dimensions)).astype(np.float32)
    second = rng.normal(size=(size, dimensions)).astype(np.float32)
    second[:, 0] += shift
    return first, second


def test_mmd_is_near_zero_for_one_distribution_and_positive_for_shifted_ones():
    same = mmd_rbf(*groups(300, 0.0), permutations=100)
    shifted = mmd_rbf(*groups(300, 1.0), permutations=100)
    assert abs(same.value) < 3 * same.standard_error and same.p_value > 0.05
    assert shifted.value > 5 * shifted.standard_error and shifted.p_value < 0.02
    assert same.images_per_group == (300, 300) and same.estimator == "all images"


@pytest.mark.parametrize(("shift", "seed"), [(0.0, 0), (0.5, 1)])
def test_subsampled_mmd_is_within_its_standard_errors_of_the_exact_one(shift, seed):
    first, second = groups(3000, shift, seed=seed)
    exact = mmd_rbf(first, second, permutations=0, max_images_per_group=None)
    subsampled = mmd_rbf(first, second, permutations=0, seed=seed, max_images_per_group=500)
    assert subsampled.images_per_group == (500, 500) and subsampled.estimator == "subsample"
    assert exact.images_per_group == (3000, 3000) and exact.standard_error < subsampled.standard_error
    assert abs(subsampled.value - exact.value) < 3 * subsampled.standard_error


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_standard_error_is_positive_and_shrinks_as_the_groups_grow(shift):
    errors = [mmd_rbf(*groups(size, shift), permutations=0).standard_error for size in (50, 200, 800)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_mmd_is_deterministic_with_a_seed():
    first, second = groups(500, 0.3)
    again = mmd_rbf(first, second, permutations=20, seed=4, max_images_per_group=300)
    assert again == mmd_rbf(first, second, permutations=20, seed=4, max_images_per_group=300)
    assert again.images_per_group == (300, 300)
    assert again.value != mmd_rbf(first, second, permutations=20, seed=5, max_images_per_group=300).value


def test_the_variance_estimate_matches_the_variance_over_samples():
    """The defining property, for a fixed kernel and unequal group sizes: the mean of the estimates over many
    samples equals the variance of MMD^2_u over them (clearly different groups, so no part of it is clipped)."""
    rng = np.random.default_rng(3)
    m, n = 12, 30
    first = np.zeros((m + n, 1))
    first[:m] = 1.0
    values, variances = [], []
    for _ in range(2000):
        pooled = rng.normal(size=(m + n, 2))
        pooled[m:, 0] += 1.0
        kernel = np.exp(-_squared_distances(pooled, pooled) / 4.0)
        np.fill_diagonal(kernel, 1.0)
        values.append(_mmd_from_assignments(kernel, first, m)[0])
        variances.append(_mmd_variance(kernel, m))
    assert np.mean(variances) == pytest.approx(np.var(values, ddof=1), rel=0.1)


def test_mmd_refuses_arrays_it_cannot_compare():
    with pytest.raises(ValueError, match="same number of columns"):
        mmd_rbf(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2 images"):
        mmd_rbf(np.zeros((1, 2)), np.zeros((5, 2)))


def test_frechet_distance_accumulated_in_blocks_equals_the_direct_formula(monkeypatch):
    monkeypatch.setattr(feature_statistics, "COVARIANCE_BLOCK_ROWS", 7)
    first, second = groups(50, 1.0, dimensions=3)
    cov_a, cov_b = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    direct = ((first.mean(0) - second.mean(0)) ** 2).sum() + np.trace(
        cov_a + cov_b - 2.0 * np.real(linalg.sqrtm(cov_a @ cov_b))
    )
    assert frechet_distance(first, second) == pytest.approx(direct, rel=1e-6)


def test_patient_subsample_takes_whole_patients_up_to_the_cap():
    subjects = np.repeat(np.arange(100), 3)
    chosen = patient_subsample(subjects, 40, seed=1)
    assert len(chosen) == 39 and np.all(np.bincount(subjects[chosen], minlength=100) % 3 == 0)
    assert np.array_equal(chosen, patient_subsample(subjects, 40, seed=1))
    assert len(patient_subsample(subjects, None)) == 300


def test_feature_analysis_records_the_images_each_bounded_statistic_used():
    rng = np.random.default_rng(0)
    size = 1200
    scanner = np.array(["D110", "S120"] * (size // 2))
    features = rng.normal(size=(size, 16)).astype(np.float32)
    features[scanner == "S120", 0] += 1.0
    demographics = {"sex": rng.choice(["F", "M"], size), "race": rng.choice(["WHITE", "BLACK", "None"], size)}
    rows = feature_analysis(
        features,
        rng.random(size),
        scanner,
        np.arange(size) // 4,
        demographics,
        permutations=20,
        max_images_per_group=200,
        probe_max_images=500,
    )
    value = {(r["grouping"], r["metric"]): r["value"] for r in rows}
    assert value["energy_group", "probe_images"] == 500 and value["energy_group", "balanced_accuracy"] > 0.6
    assert value["energy_group", "silhouette_images"] == 400
    assert value["energy_group", "mmd_images_group_a"] == value["energy_group", "mmd_images_group_b"] == 200
    assert 0 < value["energy_group", "mmd_squared_standard_error"] < value["energy_group", "mmd_squared"]
    assert {("sex within D110", "mean_ks_statistic"), ("race within S120", "ks_statistic")} <= value.keys()
    assert all(set(r) == {"analysis", "grouping", "group_a", "group_b", "metric", "value", "p_value"} for r in rows)
