"""Mass attenuation of the phantom's materials and of detector layers, from xraylib (NIST compound data).

Reference: Schoonjans et al., "The xraylib library for X-ray-matter interactions. Recent developments",
Spectrochim. Acta B 66 (2011).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Phantom materials: xraylib NIST name and the density used for path lengths (g/cm3). Inflated lung is about a quarter
# of the tissue density that the NIST 'Lung (ICRP)' entry lists for lung tissue itself.
MATERIALS: dict[str, tuple[str, float]] = {
    "soft_tissue": ("Tissue, Soft (ICRP)", 1.03),
    "adipose": ("Adipose Tissue (ICRP)", 0.95),
    "lung": ("Lung (ICRP)", 0.26),
    "bone": ("Bone, Cortical (ICRP)", 1.85),
    "metal": ("Fe", 7.87),
}
MATERIAL_NAMES: tuple[str, ...] = tuple(MATERIALS)

# Detector converter layers.
DETECTOR_LAYERS: dict[str, tuple[str, float]] = {
    "a-Se": ("Se", 4.28),
    "CsI": ("Cesium Iodide", 4.51),
}


def _cross_section(xraylib_name: str, energy_kev: float) -> float:
    import xraylib

    try:
        return xraylib.CS_Total_CP(xraylib_name, float(energy_kev))
    except ValueError as error:
        raise ValueError(f"xraylib has no material {xraylib_name!r} (energy {energy_kev} keV)") from error


@lru_cache(maxsize=256)
def _linear_attenuation_cached(xraylib_name: str, density: float, energies: tuple[float, ...]) -> np.ndarray:
    values = np.array([_cross_section(xraylib_name, energy) * density for energy in energies])
    values.setflags(write=False)
    return values


def linear_attenuation(material: str, energies_kev: np.ndarray) -> np.ndarray:
    """Linear attenuation coefficient (1/cm) of a phantom material at each energy."""
    if material not in MATERIALS:
        raise ValueError(f"unknown phantom material {material!r}; known: {sorted(MATERIALS)}")
    name, density = MATERIALS[material]
    return _linear_attenuation_cached(name, density, tuple(float(e) for e in energies_kev))


def attenuation_matrix(energies_kev: np.ndarray) -> np.ndarray:
    """``(n_materials, n_energies)`` linear attenuation (1/cm), rows in ``MATERIAL_NAMES`` order."""
    return np.stack([linear_attenuation(material, energies_kev) for material in MATERIAL_NAMES])


def layer_absorption(layer: str, thickness_mm: float, energies_kev: np.ndarray) -> np.ndarray:
    """Fraction of photons of each energy that interact in a converter layer: ``1 - exp(-mu t)``."""
    if layer not in DETECTOR_LAYERS:
        raise ValueError(f"unknown detector layer {layer!r}; known: {sorted(DETECTOR_LAYERS)}")
    name, density = DETECTOR_LAYERS[layer]
    mu = _linear_attenuation_cached(name, density, tuple(float(e) for e in energies_kev))
    return 1.0 - np.exp(-mu * thickness_mm / 10.0)
