"""The shortcut controls and ranking guards that every harmonization judgement shares (the powered benchmark,
``harmonize.bench``, and the cohort evaluation, ``harmonize.evaluate``).

A scanner classifier's balanced accuracy says something about texture only when trivial cues cannot tell the scanners
apart: an outline-only classifier (which pixels are non-zero, block-averaged) and a scalar-cue classifier (zero share,
padding widths, distinct values, global quantiles, mean and spread), trained on the training images and scored on the
test images, must stay at or under ``CONTROL_LIMIT``, or the scanner is readable from the frame or a global statistic
and the classifier's result is discarded. A method ranks only if it keeps the diagnostic model's mean AUC within
``NON_INFERIORITY`` of no harmonization: erasing the image erases the scanner too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ingest.images import ImageCache

CONTROL_LIMIT = 0.60
NON_INFERIORITY = 0.02
OUTLINE_BLOCKS = 16
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class Labelled(Protocol):
    dicom_id: str
    label: int


def control_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outline, scalar cues) of one analysis image: the cues a scanner classifier must not be able to use."""
    size = image.shape[0]
    nonzero = image > 0
    block = max(size // OUTLINE_BLOCKS, 1)
    outline = nonzero[: block * OUTLINE_BLOCKS, : block * OUTLINE_BLOCKS]
    outline = outline.reshape(OUTLINE_BLOCKS, block, OUTLINE_BLOCKS, block).mean(axis=(1, 3)).ravel()
    columns, rows = np.flatnonzero(nonzero.any(axis=0)), np.flatnonzero(nonzero.any(axis=1))
    pads = [columns[0], size - 1 - columns[-1], rows[0], size - 1 - rows[-1]] if len(columns) else [size] * 4
    scalars = [1 - nonzero.mean(), *pads, len(np.unique(image)), image.mean(), image.std()]
    scalars += list(np.quantile(image, QUANTILES))
    return outline.astype(np.float32), np.asarray(scalars, dtype=np.float32)


def control_scores(train: Sequence[Labelled], test: Sequence[Labelled], cache: ImageCache) -> dict[str, np.ndarray]:
    """Test scores (the probability of label 1) of the outline-only (logistic regression) and scalar-cue
    (gradient-boosted trees) classifiers, trained on ``train``'s analysis images in ``cache``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(images):
        pairs = [control_features(cache.load(i.dicom_id)) for i in images]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    (train_outline, train_scalar), (test_outline, test_scalar) = features(train), features(test)
    labels = np.array([i.label for i in train])
    outline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_outline, labels)
    scalar = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(train_scalar, labels)
    return {
        "outline_only": outline.predict_proba(test_outline)[:, 1],
        "scalar_cues": scalar.predict_proba(test_scalar)[:, 1],
    }
