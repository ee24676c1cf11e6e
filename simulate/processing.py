"""Vendor "For Presentation" processing of a raw detector image.

The chain every vendor implements in its own way: a logarithm (so pixel values follow attenuation), exposure
recognition (the window of log values that holds the anatomy is found from the histogram and stretched to a fixed
range), multi-band unsharp masking with dynamic range compression (band gains that enhance fine detail and flatten the
broad lung/mediastinum contrast), a tone-scale look-up table (a sigmoid, like a film characteristic curve), quantization
to the stored bits, and MONOCHROME1 (inverted) or MONOCHROME2 output. The parameters are per vendor and live in
``profiles.yaml``.

References: Vuylsteke and Schoeters, "Multiscale image contrast amplification (MUSICA)", Proc. SPIE 2167 (1994);
Seibert, "Digital radiography: image quality and radiation dose", Health Phys. 95 (2008) (exposure recognition);
Prokop et al., "Principles of image processing in digital chest radiography", J. Thorac. Imaging 18 (2003).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulate.filters import gaussian_blur


@dataclass(frozen=True)
class Band:
    """One band of the multi-band decomposition: Gaussian sigma (mm) of its upper edge and its gain."""

    sigma_mm: float
    gain: float


@dataclass(frozen=True)
class Processing:
    """One vendor's processing parameters.

    Attributes
    ----------
    recognition_percentiles
        Lower and upper percentiles of the log image inside the exposed field that map to 0 and 1.
    bands
        Detail bands, finest first; each band is the difference between Gaussian blurs of consecutive sigmas.
    range_compression
        Fraction by which the residual (coarsest) band's deviations from its mean are reduced.
    tone_contrast, tone_midpoint
        Slope and centre of the sigmoid tone curve on the normalized scale.
    photometric
        ``MONOCHROME1`` (high values dark) or ``MONOCHROME2`` (high values bright).
    bits_stored
        Stored bits of the output.
    """

    recognition_percentiles: tuple[float, float]
    bands: tuple[Band, ...]
    range_compression: float
    tone_contrast: float
    tone_midpoint: float
    photometric: str
    bits_stored: int

    def __post_init__(self) -> None:
        if self.photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {self.photometric!r}")
        if not 8 <= self.bits_stored <= 16:
            raise ValueError(f"bits_stored must be 8-16, got {self.bits_stored}")


# Exposure recognition leaves out direct exposure: pixels whose signal exceeds this fraction of the unattenuated beam's.
DIRECT_EXPOSURE_FRACTION = 0.6


def log_normalize(
    raw: np.ndarray, field_mask: np.ndarray, percentiles: tuple[float, float], direct_signal: float
) -> np.ndarray:
    """``-log(raw)``, windowed by exposure recognition: the chosen percentiles of the anatomy map to 0 and 1.

    The anatomy is the exposed field less the direct-exposure area, where the signal is close to ``direct_signal``
    (the unattenuated beam's).
    """
    attenuation = -np.log(np.clip(raw, 1e-3, None), dtype=np.float32)
    anatomy = field_mask & (raw < DIRECT_EXPOSURE_FRACTION * direct_signal)
    values = attenuation[anatomy] if anatomy.sum() > 100 else attenuation[field_mask]
    low, high = np.percentile(values, percentiles)
    return (attenuation - low) / max(high - low, 1e-6)


def multiband_enhance(
    image: np.ndarray, bands: tuple[Band, ...], range_compression: float, spacing_mm: float
) -> np.ndarray:
    """Unsharp masking in several bands plus compression of the coarsest band (MUSICA-like)."""
    previous = image
    out = np.zeros_like(image)
    for band in bands:
        blurred = gaussian_blur(previous, band.sigma_mm / spacing_mm)
        out += band.gain * (previous - blurred)
        previous = blurred
    mean = float(previous.mean())
    return out + mean + (1.0 - range_compression) * (previous - mean)


def tone_curve(image: np.ndarray, contrast: float, midpoint: float) -> np.ndarray:
    """A sigmoid rescaled so that 0 and 1 on the input map to 0 and 1 on the output."""

    def sigmoid(v: np.ndarray | float) -> np.ndarray | float:
        return 1.0 / (1.0 + np.exp(-contrast * (v - midpoint)))

    low, high = sigmoid(0.0), sigmoid(1.0)
    return (sigmoid(image) - low) / (high - low)


def present(
    raw: np.ndarray, processing: Processing, spacing_mm: float, field_mask: np.ndarray, direct_signal: float
) -> np.ndarray:
    """The stored pixel values (uint16, ``bits_stored`` used) of a "For Presentation" image.

    Outside the collimated field the vendor's electronic shutter shows black.
    """
    normalized = log_normalize(raw, field_mask, processing.recognition_percentiles, direct_signal)
    enhanced = multiband_enhance(normalized, processing.bands, processing.range_compression, spacing_mm)
    toned = np.clip(tone_curve(enhanced, processing.tone_contrast, processing.tone_midpoint), 0.0, 1.0)
    toned[~field_mask] = 0.0
    max_value = (1 << processing.bits_stored) - 1
    stored = np.rint(toned * max_value).astype(np.uint16)
    if processing.photometric == "MONOCHROME1":
        stored = max_value - stored
    return stored


def presented_values(stored: np.ndarray, processing: Processing) -> np.ndarray:
    """The values as presented (float32, larger is brighter) of pixels :func:`present` stored: MONOCHROME1 inverted."""
    values = stored.astype(np.float32)
    if processing.photometric == "MONOCHROME1":
        values = float((1 << processing.bits_stored) - 1) - values
    return values
