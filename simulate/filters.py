"""Image filters shared by the detector model and the vendor processing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _interpolation_matrix(n_out: int, n_in: int, factor: int) -> np.ndarray:
    """Linear interpolation weights from ``n_in`` block centres to ``n_out`` pixel centres (blocks of ``factor``)."""
    position = np.clip((np.arange(n_out) + 0.5) / factor - 0.5, 0, n_in - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, n_in - 1)
    weight = position - lower
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    matrix[np.arange(n_out), lower] += 1 - weight
    matrix[np.arange(n_out), upper] += weight
    return matrix


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A Gaussian blur whose cost does not grow with sigma.

    Small sigmas are filtered directly. For sigma of 8 pixels and more the image is block-averaged by ``sigma // 4``,
    filtered there (still at 4 or more pixels of sigma, well sampled) and interpolated back linearly: the result is
    smooth on the scale of a block, which is all a broad blur keeps.
    """
    factor = max(1, int(sigma_px // 4))
    if factor == 1:
        return ndimage.gaussian_filter(image, sigma_px, mode="nearest")
    rows, cols = image.shape
    padded = np.pad(image, ((0, -rows % factor), (0, -cols % factor)), mode="edge")
    small = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma_px / factor, mode="nearest").astype(np.float32)
    return (
        _interpolation_matrix(rows, small.shape[0], factor)
        @ small
        @ _interpolation_matrix(cols, small.shape[1], factor).T
    )
