"""Classification metrics as small pure functions on arrays of labels and class probabilities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes present."""
    totals = matrix.sum(axis=1)
    present = totals > 0
    return float(np.mean(np.diag(matrix)[present] / totals[present])) if present.any() else float("nan")


def balanced_accuracy_half_width(test_images: int) -> float:
    """The 95% interval's half-width of a balanced accuracy at chance (0.5, the widest) on ``test_images`` split
    evenly between two classes, by the normal approximation: each recall's variance is 0.25 / (n / 2), their mean's
    0.25 / n."""
    return 1.96 * 0.5 / np.sqrt(test_images)


def test_images_for_half_width(half_width: float) -> int:
    """The inverse of :func:`balanced_accuracy_half_width`: how many test images (half per class) reach it."""
    per_class = int(np.ceil((1.96 * 0.5 / half_width) ** 2 / 2))
    return 2 * per_class


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (by predicted column) and recall (by true row); NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.diag(matrix) / matrix.sum(axis=0)
        recall = np.diag(matrix) / matrix.sum(axis=1)
    return precision, recall


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC: binary on the positive class's probability, one-vs-rest macro average otherwise; NaN if one class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(
        roc_auc_score(
            labels, probabilities, multi_class="ovr", average="macro", labels=list(range(probabilities.shape[1]))
        )
    )


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Top-label expected calibration error (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


BOOTSTRAP_SAMPLES = 500


def bootstrap(
    statistic: Callable[[np.ndarray], float], strata: list[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """``statistic(index)`` over ``BOOTSTRAP_SAMPLES`` resamples: each stratum (an array of indices) is drawn with
    replacement to its own size, so stratifying by class keeps every resample two-class."""
    return np.array(
        [
            statistic(np.concatenate([stratum[rng.integers(0, len(stratum), len(stratum))] for stratum in strata]))
            for _ in range(BOOTSTRAP_SAMPLES)
        ]
    )


def percentile_interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap samples (NaN samples ignored)."""
    return float(np.nanpercentile(samples, 2.5)), float(np.nanpercentile(samples, 97.5))
