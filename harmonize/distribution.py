"""Distribution-function harmonization: exact CDF matching to a reference quantile function, and Nyul-Udupa.

``apply_cdf_matching`` maps each intensity through the image's own cumulative distribution (inside the body) and the
reference group's mean quantile function, the exact matching of ``skimage.exposure.match_histograms``
(``_match_cumulative_cdf``) against a group template instead of one image. Integer images go through a lookup table
built from their histogram; ``step`` takes the histogram from every step-th row and column (the subsampled-CDF option).
``apply_landmarks`` is the piecewise-linear standardization of Nyul and Udupa ("On standardizing the MR image
intensity scale", Magn. Reson. Med. 42, 1999; Nyul, Udupa and Zhang, IEEE TMI 19, 2000), as in torchio's
HistogramStandardization.

Both are fitted from per-image summaries (sums over the images, merged with
:func:`harmonize.common.add_summaries`): ``summarize_quantiles`` / ``finish_quantiles`` and ``summarize_landmarks`` /
``finish_landmarks``.
"""

from __future__ import annotations

import numpy as np

from harmonize.common import (
    Params,
    apply_lookup,
    body_values,
    check_image,
    weighted_quantiles,
)

LEVELS = np.linspace(0.0, 1.0, 1025)
LANDMARK_PERCENTILES = np.array([1.0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99.0])


def summarize_quantiles(image: np.ndarray) -> Params:
    """One reference image's quantile function of body intensities at ``LEVELS``, as a summary to add up."""
    quantiles = weighted_quantiles(*body_values(check_image(image)), LEVELS)
    return {"images": 1, "quantiles_sum": quantiles}


def finish_quantiles(summary: Params) -> Params:
    """The reference group's mean quantile function: ``levels`` and ``quantiles``."""
    return {"levels": LEVELS.copy(), "quantiles": summary["quantiles_sum"] / summary["images"]}


def _body_cdf(image: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, cumulative share) of the body's intensities."""
    values, counts = body_values(image, step=step)
    return values, np.cumsum(counts, dtype=np.float64) / counts.sum()


def apply_cdf_matching(image: np.ndarray, params: Params, *, step: int = 1) -> np.ndarray:
    """Exact CDF matching of the body to the reference quantile function; float32 in the reference's scale."""
    image = check_image(image)
    values, cdf = _body_cdf(image, step)
    if image.dtype.kind == "u":
        all_values = np.arange(int(image.max()) + 1, dtype=np.float64)
        share = np.interp(all_values, values, cdf, left=0.0, right=1.0)
        return apply_lookup(image, np.interp(share, params["levels"], params["quantiles"]))
    share = np.interp(image.ravel(), values, cdf, left=0.0, right=1.0)
    return np.interp(share, params["levels"], params["quantiles"]).astype(np.float32).reshape(image.shape)


def summarize_landmarks(image: np.ndarray) -> Params:
    """One reference image's percentile landmarks ``L`` as a summary to add up: its first and last landmark and its
    landmarks relative to them, ``(L - L[0]) / (L[-1] - L[0])``."""
    landmarks = weighted_quantiles(*body_values(check_image(image)), LANDMARK_PERCENTILES / 100.0)
    span = max(landmarks[-1] - landmarks[0], 1e-12)
    return {
        "images": 1,
        "first_sum": float(landmarks[0]),
        "last_sum": float(landmarks[-1]),
        "relative_sum": (landmarks - landmarks[0]) / span,
    }


def finish_landmarks(summary: Params) -> Params:
    """Nyul-Udupa standard landmarks: each image's landmarks rescaled so its first and last land on the reference
    group's mean first and last, then averaged, which is ``low + (high - low) * mean((L - L[0]) / span)``."""
    images = summary["images"]
    low, high = summary["first_sum"] / images, summary["last_sum"] / images
    return {
        "percentiles": LANDMARK_PERCENTILES.copy(),
        "landmarks": low + (high - low) * summary["relative_sum"] / images,
    }


def _piecewise_linear(x: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """np.interp with linear extrapolation beyond the first and last landmark (as Nyul-Udupa prescribe)."""
    y = np.interp(x, source, target)
    below, above = x < source[0], x > source[-1]
    if below.any():
        y[below] = target[0] + (x[below] - source[0]) * (target[1] - target[0]) / max(source[1] - source[0], 1e-12)
    if above.any():
        y[above] = target[-1] + (x[above] - source[-1]) * (target[-1] - target[-2]) / max(
            source[-1] - source[-2], 1e-12
        )
    return y


def apply_landmarks(image: np.ndarray, params: Params) -> np.ndarray:
    """Piecewise-linear map of the image's landmarks onto the standard ones; float32."""
    image = check_image(image)
    source = weighted_quantiles(*body_values(image), params["percentiles"] / 100.0).astype(np.float64)
    source = np.maximum.accumulate(source + np.arange(len(source)) * 1e-9)  # strictly increasing for np.interp
    if image.dtype.kind == "u":
        table = _piecewise_linear(np.arange(int(image.max()) + 1, dtype=np.float64), source, params["landmarks"])
        return apply_lookup(image, table)
    return (
        _piecewise_linear(image.astype(np.float64).ravel(), source, params["landmarks"])
        .astype(np.float32)
        .reshape(image.shape)
    )
