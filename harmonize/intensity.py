"""Min/max, percentile windowing and z-score harmonization, mapped to a reference group's range or moments.

Each method is a linear map of the image's intensities; fitting takes the reference group's mean per-image statistics
inside the body mask (:func:`harmonize.common.body_values`), from per-image sums (``summarize_statistics``, merged with
:func:`harmonize.common.add_summaries`, then ``finish_statistics``). Integer images are mapped through a lookup table.
References: the per-image normalizations of Nyul and Udupa's comparison ("On standardizing the MR image intensity
scale", Magn. Reson. Med. 42, 1999) and of Shinohara et al. ("Statistical normalization techniques for magnetic
resonance imaging", NeuroImage Clin. 6, 2014), applied here to radiographs.
"""

from __future__ import annotations

import numpy as np

from harmonize.common import Params, apply_lookup, body_values, check_image, weighted_quantiles

PERCENTILES = (0.5, 99.5)
STATISTICS = ("min", "max", "low", "high", "mean", "std")


def summarize_statistics(image: np.ndarray) -> Params:
    """One reference image's extremes, body ``PERCENTILES`` (``low``, ``high``), body mean and standard deviation, as a
    summary to add up (``<statistic>_sum``)."""
    image = check_image(image)
    values, counts = body_values(image)
    low, high = weighted_quantiles(values, counts, np.array(PERCENTILES) / 100.0)
    mean = float(np.average(values, weights=counts))
    std = float(np.sqrt(np.average((values - mean) ** 2, weights=counts)))
    statistics = (float(image.min()), float(image.max()), float(low), float(high), mean, std)
    return {"images": 1, **{f"{name}_sum": value for name, value in zip(STATISTICS, statistics, strict=True)}}


def finish_statistics(summary: Params) -> Params:
    """The reference group's mean extremes, percentiles, mean and standard deviation inside the body."""
    means = {name: summary[f"{name}_sum"] / summary["images"] for name in STATISTICS}
    return {**means, "percentiles": np.asarray(PERCENTILES, dtype=np.float64)}


def _linear(image: np.ndarray, scale: float, offset: float, clip: tuple[float, float] | None = None) -> np.ndarray:
    """``image * scale + offset`` (optionally clipped), through a lookup table for integer images."""
    if image.dtype.kind == "u":
        table = np.arange(int(image.max()) + 1, dtype=np.float64) * scale + offset
        if clip is not None:
            np.clip(table, *clip, out=table)
        return apply_lookup(image, table)
    out = image.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return np.clip(out, *clip) if clip is not None else out


def apply_minmax(image: np.ndarray, params: Params) -> np.ndarray:
    """Map the image's own minimum and maximum onto the reference's."""
    image = check_image(image)
    low, high = float(image.min()), float(image.max())
    scale = (params["max"] - params["min"]) / max(high - low, 1e-12)
    return _linear(image, scale, params["min"] - low * scale)


def apply_percentile_window(image: np.ndarray, params: Params) -> np.ndarray:
    """Map the image's body percentiles onto the reference's and clip to them (robust to outlier pixels)."""
    image = check_image(image)
    values, counts = body_values(image)
    low, high = weighted_quantiles(values, counts, params["percentiles"] / 100.0)
    scale = (params["high"] - params["low"]) / max(float(high - low), 1e-12)
    return _linear(image, scale, params["low"] - low * scale, clip=(params["low"], params["high"]))


def apply_zscore(image: np.ndarray, params: Params) -> np.ndarray:
    """Give the body the reference's mean and standard deviation."""
    image = check_image(image)
    values, counts = body_values(image)
    mean = float(np.average(values, weights=counts))
    std = float(np.sqrt(np.average((values - mean) ** 2, weights=counts)))
    scale = params["std"] / max(std, 1e-12)
    return _linear(image, scale, params["mean"] - mean * scale)
