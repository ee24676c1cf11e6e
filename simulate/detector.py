"""Image formation: polyenergetic attenuation, scatter, anti-scatter grid and a flat-panel detector.

For each pixel the expected number of absorbed quanta and the absorbed energy are integrated over the tube spectrum:

    N(x) = sum_E  Phi(E) eta(E) exp(-sum_m mu_m(E) L_m(x))          S(x) = sum_E  E Phi(E) eta(E) exp(...)

with ``Phi`` the fluence per pixel (proportional to mAs, inverse-square in the source-to-image distance), ``eta`` the
converter's absorption (a-Se for direct, CsI for indirect detectors) and ``L_m`` the path-length maps of the phantom.
Scatter is a broad low-pass of the primary weighted by the local water-equivalent thickness; a grid passes most primary
and little scatter. Quantum noise is Poisson in the number of quanta (energy-integrating: each quantum carries the
pixel's mean absorbed energy); a scintillator's light spread then blurs signal and noise together, which is why indirect
detectors have both a lower MTF and a lower high-frequency noise power than direct ones; electronic noise is added last.

References: Bushberg et al., "The Essential Physics of Medical Imaging", 3rd ed. (2012), ch. 6-7 (spectra, scatter,
grids, detectors); Cunningham, "Applied linear-systems theory", Handbook of Medical Imaging vol. 1 (2000) (noise
transfer through blur stages); Boone et al., Med. Phys. 17 (1990) (scatter-to-primary ratios in chest radiography).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.fft import irfft2, next_fast_len, rfft2

from simulate.attenuation import MATERIAL_NAMES, MATERIALS, attenuation_matrix, layer_absorption
from simulate.filters import gaussian_blur
from simulate.phantom import PathMaps
from simulate.spectra import tube_spectrum

_PIXELS_PER_CHUNK = 1 << 16


@dataclass(frozen=True)
class Technique:
    """Exposure technique of one image."""

    kvp: float
    mas: float
    filtration_mm_al: float
    source_to_image_cm: float
    grid: bool


@dataclass(frozen=True)
class Detector:
    """A flat-panel detector.

    Attributes
    ----------
    detector_type
        ``DIRECT`` (photoconductor, charge collected straight to the pixel) or ``SCINTILLATOR`` (light from a phosphor).
    layer, thickness_mm
        The converter material (``a-Se`` or ``CsI``) and its thickness.
    blur_mm
        Width of the conversion stage's spread: the sigma of a Gaussian (``spread: gaussian``, charge drift in a-Se,
        standing in for the pixel aperture too) or the length of an exponential line spread function (``spread:
        exponential``, light spread in a phosphor, whose MTF is ``1 / (1 + (2 pi L f)^2)``; Swank, "Calculation of
        modulation transfer functions of x-ray fluorescent screens", Appl. Opt. 12 (1973)).
    electronic_noise_quanta
        Standard deviation of the read-out noise, in quanta at the mean absorbed energy: a few quanta per pixel on
        modern panels (Samei and Flynn, "An experimental comparison of detector performance for direct and indirect
        digital radiography systems", Med. Phys. 30 (2003)).
    spread
        ``gaussian`` or ``exponential`` (see ``blur_mm``).
    """

    detector_type: str
    layer: str
    thickness_mm: float
    blur_mm: float
    electronic_noise_quanta: float
    spread: str = "gaussian"

    def __post_init__(self) -> None:
        if self.spread not in SPREADS:
            raise ValueError(f"detector spread must be one of {SPREADS}, got {self.spread!r}")

    def mtf(self, frequency_per_mm: np.ndarray) -> np.ndarray:
        """The conversion stage's modulation transfer function at these spatial frequencies (cycles per mm)."""
        f = np.asarray(frequency_per_mm, dtype=float)
        if self.spread == "exponential":
            return 1.0 / (1.0 + (2 * np.pi * self.blur_mm * f) ** 2)
        return np.exp(-2 * (np.pi * self.blur_mm * f) ** 2)


SPREADS = ("gaussian", "exponential")


def blur(signal: np.ndarray, detector: Detector, pixel_spacing_mm: float) -> np.ndarray:
    """The detector's MTF applied to an image sampled at ``pixel_spacing_mm`` (exponential spread: by FFT, mirrored)."""
    if detector.blur_mm / pixel_spacing_mm < 0.05:
        return signal
    if detector.spread == "gaussian":
        return ndimage.gaussian_filter(signal, detector.blur_mm / pixel_spacing_mm, mode="nearest")
    rows, cols = signal.shape
    padded = np.pad(signal, ((0, next_fast_len(rows + 64) - rows), (0, next_fast_len(cols + 64) - cols)), "reflect")
    fy = np.fft.fftfreq(padded.shape[0], d=pixel_spacing_mm)[:, None]
    fx = np.fft.rfftfreq(padded.shape[1], d=pixel_spacing_mm)[None, :]
    transfer = detector.mtf(np.hypot(fy, fx)).astype(np.float32)
    filtered = irfft2(rfft2(padded, workers=1) * transfer, s=padded.shape, workers=1)
    return filtered[:rows, :cols].astype(np.float32)


# Grid transmission of primary and scatter (a 10:1 focused grid at chest energies).
GRID_PRIMARY_TRANSMISSION = 0.72
GRID_SCATTER_TRANSMISSION = 0.12
SCATTER_KERNEL_CM = 4.0
SCATTER_ENERGY_FRACTION = 0.9


def scatter_to_primary(kvp: float, water_equivalent_cm: np.ndarray) -> np.ndarray:
    """Local scatter-to-primary ratio without a grid: grows with thickness, a little with kVp (Boone et al. 1990)."""
    return (0.035 + 0.0004 * (kvp - 80.0)) * water_equivalent_cm


def expected_signal(
    maps: PathMaps, technique: Technique, detector: Detector, pixel_spacing_cm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free absorbed quanta and absorbed energy (keV) per pixel, primary only, before the grid."""
    energies, photons_per_cm2_per_mas = tube_spectrum(technique.kvp, technique.filtration_mm_al)
    fluence = photons_per_cm2_per_mas * technique.mas * (100.0 / technique.source_to_image_cm) ** 2
    absorbed = fluence * pixel_spacing_cm**2 * layer_absorption(detector.layer, detector.thickness_mm, energies)
    weights = np.stack([absorbed, absorbed * energies]).astype(np.float32)  # (2, n_energies)
    mu = attenuation_matrix(energies).T.astype(np.float32)  # (n_energies, n_materials)
    paths = maps.stack().reshape(len(MATERIAL_NAMES), -1)
    out = np.empty((2, paths.shape[1]), dtype=np.float32)
    for start in range(0, paths.shape[1], _PIXELS_PER_CHUNK):
        chunk = mu @ paths[:, start : start + _PIXELS_PER_CHUNK]
        np.exp(-chunk, out=chunk)
        out[:, start : start + _PIXELS_PER_CHUNK] = weights @ chunk
    quanta, energy = out.reshape(2, *maps.body_mask.shape)
    return quanta, energy


def unattenuated_signal(technique: Technique, detector: Detector, pixel_spacing_cm: float) -> float:
    """The raw signal (keV per pixel) where the beam reaches the detector through air only, behind the grid if any.

    A unit knows it from its technique and calibration; its exposure recognition uses it to tell direct exposure from
    anatomy.
    """
    empty = np.zeros((1, 1), dtype=np.float32)
    maps = PathMaps(*(empty for _ in MATERIAL_NAMES), body_mask=np.zeros((1, 1), dtype=bool))
    _, energy = expected_signal(maps, technique, detector, pixel_spacing_cm)
    return float(energy[0, 0]) * (GRID_PRIMARY_TRANSMISSION if technique.grid else 1.0)


def acquire(
    maps: PathMaps,
    technique: Technique,
    detector: Detector,
    pixel_spacing_cm: float,
    rng: np.random.Generator,
    *,
    field_mask: np.ndarray | None = None,
    noise: bool = True,
) -> np.ndarray:
    """The detector's raw signal (absorbed energy in keV per pixel, float32) for one exposure.

    Parameters
    ----------
    field_mask
        Boolean map of the collimated field; outside it no primary reaches the detector.
    noise
        False gives the expected signal (blurred, with scatter) without quantum or electronic noise.
    """
    quanta, energy = expected_signal(maps, technique, detector, pixel_spacing_cm)
    if field_mask is not None:
        quanta = quanta * field_mask
        energy = energy * field_mask
    density = np.array([MATERIALS[name][1] for name in MATERIAL_NAMES], dtype=np.float32)
    water_equivalent = np.tensordot(density, maps.stack(), axes=1)
    kernel_px = SCATTER_KERNEL_CM / pixel_spacing_cm
    scatter_quanta = gaussian_blur(quanta * scatter_to_primary(technique.kvp, water_equivalent), kernel_px)
    # Compton scatter leaves the patient a little softer than the primary beam that reaches the detector.
    primary_mean_energy = float(energy.sum() / max(float(quanta.sum()), 1e-9))
    scatter_energy = scatter_quanta * (SCATTER_ENERGY_FRACTION * primary_mean_energy)
    if technique.grid:
        primary_pass, scatter_pass = GRID_PRIMARY_TRANSMISSION, GRID_SCATTER_TRANSMISSION
    else:
        primary_pass, scatter_pass = 1.0, 1.0
    total_quanta = primary_pass * quanta + scatter_pass * scatter_quanta
    total_energy = primary_pass * energy + scatter_pass * scatter_energy
    mean_energy = np.divide(total_energy, total_quanta, out=np.zeros_like(total_energy), where=total_quanta > 0)
    if noise:
        # Poisson statistics of the absorbed quanta (normal approximation: counts here are in the thousands).
        total_quanta = total_quanta + np.sqrt(total_quanta) * rng.standard_normal(total_quanta.shape, dtype=np.float32)
    signal = np.clip(total_quanta, 0.0, None) * mean_energy
    signal = blur(signal, detector, pixel_spacing_cm * 10.0)
    if noise and detector.electronic_noise_quanta > 0:
        reference_energy = float(np.median(mean_energy[mean_energy > 0])) if np.any(mean_energy > 0) else 1.0
        signal = signal + detector.electronic_noise_quanta * reference_energy * rng.standard_normal(
            signal.shape, dtype=np.float32
        )
    return signal.astype(np.float32)
