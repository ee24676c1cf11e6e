"""Statistics of deep features between groups: small pure functions on arrays.

References: Gretton et al., "A Kernel Two-Sample Test", JMLR 13 (2012) (MMD, median heuristic, permutation test);
Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017
(Frechet distance between Gaussians fitted to features); Cherezov, Fu and Madabhushi, 2025 (Kolmogorov-Smirnov effect
sizes of scores and features between scanner and demographic groups).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with an RBF kernel (bandwidth: median pairwise distance) and its permutation p-value."""
    pooled = np.concatenate([x, y]).astype(np.float64)
    distances = _squared_distances(pooled, pooled)
    median = np.median(distances[np.triu_indices(len(pooled), k=1)])
    kernel = np.exp(-distances / max(median, 1e-12))
    n = len(x)

    def statistic(index: np.ndarray) -> float:
        first, second = index[:n], index[n:]
        kxx = kernel[np.ix_(first, first)]
        kyy = kernel[np.ix_(second, second)]
        kxy = kernel[np.ix_(first, second)]
        m = len(second)
        return float(
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean()
        )

    observed = statistic(np.arange(len(pooled)))
    rng = np.random.default_rng(seed)
    exceed = sum(statistic(rng.permutation(len(pooled))) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root = np.real(linalg.sqrtm(cov_x @ cov_y))
    return float(((mean_x - mean_y) ** 2).sum() + np.trace(cov_x + cov_y - 2.0 * root))


def ks_effect(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic (the effect size, 0-1) and its p-value."""
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def ks_over_features(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and maximum KS statistic over the feature dimensions."""
    values = [stats.ks_2samp(a[:, j], b[:, j]).statistic for j in range(a.shape[1])]
    return float(np.mean(values)), float(np.max(values))


def linear_probe(features: np.ndarray, groups: np.ndarray, subjects: np.ndarray, folds: int = 5) -> tuple[float, float]:
    """Balanced accuracy (mean, SD over folds) of a logistic regression predicting ``groups`` from ``features``,
    cross-validated with folds grouped by patient, so no patient is in both the fitting and the scoring part."""
    accuracies = []
    for train_index, test_index in GroupKFold(n_splits=folds).split(features, groups, subjects):
        if len(set(groups[train_index])) < 2:
            continue
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        classifier.fit(features[train_index], groups[train_index])
        accuracies.append(balanced_accuracy_score(groups[test_index], classifier.predict(features[test_index])))
    return (float(np.mean(accuracies)), float(np.std(accuracies))) if accuracies else (float("nan"), float("nan"))
