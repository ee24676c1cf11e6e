"""Fourier-space harmonization: low-frequency amplitude replacement (FDA) and radial band-energy equalization.

``apply_fda`` keeps the image's phase and replaces the amplitude in the centred low-frequency square of half-width
``floor(beta * min(h, w))`` with the reference group's mean amplitude (Yang and Soatto, "FDA: Fourier Domain Adaptation
for Semantic Segmentation", CVPR 2020). It only reaches the lowest frequencies: global tone and large-scale contrast.
``apply_band_equalization`` scales each radial frequency band so its energy matches the reference group's, which also
reaches noise texture and sharpening (the multi-band energy normalization of Philipsen et al., "Localized energy-based
normalization of medical images: application to chest radiography", IEEE TMI 34, 2015, here global per band).

Spectra are taken with ``scipy.fft.rfft2`` in float32 on two workers. Amplitudes are stored per pixel (divided by the
pixel count) at frequencies in cycles per image, so references and targets of different matrix sizes but the same
field of view compare; band energies are per coefficient at frequencies in cycles per pixel.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from scipy import fft

from harmonize.common import Params, check_image, in_parallel

WORKERS = 2
BETA_MAX = 0.09
BAND_EDGES = np.array([0.0, 1 / 512, 1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 0.75])


def _spectrum(image: np.ndarray) -> np.ndarray:
    return fft.rfft2(np.asarray(image, dtype=np.float32), workers=WORKERS)


def _inverse(spectrum: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return fft.irfft2(spectrum, s=shape, workers=WORKERS)


def _low_block(shape: tuple[int, int], half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the rfft2 coefficients within ``half_width`` cycles per image of zero."""
    rows = np.r_[np.arange(0, half_width + 1), np.arange(shape[0] - half_width, shape[0])]
    return rows, np.arange(0, half_width + 1)


def fit_fda(images: Iterable[np.ndarray], *, beta_max: float = BETA_MAX) -> Params:
    """The reference group's mean low-frequency amplitude per pixel, up to ``beta_max``."""
    images = [check_image(image) for image in images]
    if not images:
        raise ValueError("fit_fda needs at least one reference image")
    half_width = min(int(np.floor(beta_max * min(image.shape))) for image in images)
    blocks = []
    for image in images:
        rows, cols = _low_block(image.shape, half_width)
        blocks.append(np.abs(_spectrum(image)[np.ix_(rows, cols)]) / image.size)
    return {"amplitude": np.mean(blocks, axis=0), "half_width": half_width}


def _finish(out: np.ndarray, image: np.ndarray, clip: bool) -> np.ndarray:
    """float32, clipped in place to the input's range unless ``clip`` is False. Fourier methods return float32 for
    every input: rounding 4 M pixels back to integers would cost a third of the FFT round trip."""
    out = out.astype(np.float32, copy=False)
    if clip:
        low, high = float(image.min()), float(image.max())
        in_parallel(lambda rows: np.clip(out[rows], low, high, out=out[rows]), out.shape[0])
    return out


def apply_fda(image: np.ndarray, params: Params, *, beta: float = 0.01, clip: bool = True) -> np.ndarray:
    """Replace the image's low-frequency amplitude with the reference's, keep its phase; clip to the input range."""
    image = check_image(image)
    if not 0 < beta <= 0.5:
        raise ValueError(f"beta must be in (0, 0.5], got {beta}")
    stored = int(params["half_width"])
    half_width = min(int(np.floor(beta * min(image.shape))), stored)
    spectrum = _spectrum(image)
    rows, cols = _low_block(image.shape, half_width)
    stored_rows, _ = _low_block((2 * stored + 1, 0), stored)
    reference_rows = (
        np.r_[stored_rows[: half_width + 1], stored_rows[len(stored_rows) - half_width :]]
        if half_width
        else stored_rows[:1]
    )
    reference = params["amplitude"][np.ix_(reference_rows, np.arange(half_width + 1))] * image.size
    block = spectrum[np.ix_(rows, cols)]
    spectrum[np.ix_(rows, cols)] = reference * np.exp(1j * np.angle(block))
    return _finish(_inverse(spectrum, image.shape), image, clip)


@lru_cache(maxsize=16)
def _band_index(shape: tuple[int, int]) -> np.ndarray:
    """The radial band (by ``BAND_EDGES``, cycles per pixel) of every rfft2 coefficient of an image of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    index = np.digitize(np.sqrt(fy * fy + fx * fx), BAND_EDGES[1:-1]).astype(np.intp)
    index.setflags(write=False)
    return index


def band_energies(image: np.ndarray, spectrum: np.ndarray | None = None) -> np.ndarray:
    """Mean power per coefficient in each radial band (every third coefficient each way: plenty for a mean)."""
    spectrum = _spectrum(image) if spectrum is None else spectrum
    index = _band_index(image.shape)[::3, ::3]
    sample = spectrum[::3, ::3]
    power = (sample.real * sample.real + sample.imag * sample.imag).ravel()
    sums = np.bincount(index.ravel(), weights=power, minlength=len(BAND_EDGES) - 1)
    counts = np.bincount(index.ravel(), minlength=len(BAND_EDGES) - 1)
    return sums / np.maximum(counts, 1) / image.size


def fit_band_energies(images: Iterable[np.ndarray]) -> Params:
    """The reference group's mean band energies."""
    energies = [band_energies(check_image(image)) for image in images]
    if not energies:
        raise ValueError("fit_band_energies needs at least one reference image")
    return {"band_edges": BAND_EDGES.copy(), "energies": np.mean(energies, axis=0)}


def apply_band_equalization(image: np.ndarray, params: Params, *, clip: bool = True) -> np.ndarray:
    """Scale each band's coefficients so its energy matches the reference's; clip to the input range."""
    image = check_image(image)
    spectrum = _spectrum(image)
    gains = np.sqrt(params["energies"] / np.maximum(band_energies(image, spectrum), 1e-30)).astype(np.float32)
    pairs = spectrum.view(np.float32).reshape(*spectrum.shape, 2)  # real and imaginary parts as float32 pairs
    index = _band_index(image.shape)

    def scale(rows: slice) -> None:
        pairs[rows] *= np.take(gains, index[rows])[..., None]

    in_parallel(scale, spectrum.shape[0])
    return _finish(_inverse(spectrum, image.shape), image, clip)
