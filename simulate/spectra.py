"""X-ray tube spectra from spekpy.

Reference: Poludniowski et al., "SpekPy v2.0: a software toolkit for modelling x-ray tube spectra",
Med. Phys. 48 (2021).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ENERGY_BIN_KEV = 2.0
ANODE_ANGLE_DEG = 12.0


@lru_cache(maxsize=64)
def tube_spectrum(kvp: float, filtration_mm_al: float) -> tuple[np.ndarray, np.ndarray]:
    """Photon fluence of a tungsten tube per mAs at 1 m, in ``ENERGY_BIN_KEV`` bins.

    Parameters
    ----------
    kvp
        Tube potential in kV.
    filtration_mm_al
        Total filtration in mm of aluminium.

    Returns
    -------
    energies_kev, photons_per_cm2_per_mas
        Bin centres (keV) and photons per cm^2 per mAs at 100 cm falling in each bin (already multiplied by the bin
        width). Arrays are read-only because they are cached.
    """
    if not 40 <= kvp <= 150:
        raise ValueError(f"tube potential {kvp} kV is outside the diagnostic range 40-150 kV")
    import spekpy  # imported here: its import takes about a second and only rendering needs it

    spectrum = spekpy.Spek(kvp=float(kvp), th=ANODE_ANGLE_DEG, dk=ENERGY_BIN_KEV)
    spectrum.filter("Al", float(filtration_mm_al))
    energies, fluence_per_kev = spectrum.get_spectrum()
    energies = np.asarray(energies, dtype=np.float64)
    photons = np.asarray(fluence_per_kev, dtype=np.float64) * ENERGY_BIN_KEV
    keep = photons > 0
    energies, photons = energies[keep], photons[keep]
    energies.setflags(write=False)
    photons.setflags(write=False)
    return energies, photons


def mean_energy(kvp: float, filtration_mm_al: float) -> float:
    """Fluence-weighted mean photon energy in keV."""
    energies, photons = tube_spectrum(kvp, filtration_mm_al)
    return float(np.sum(energies * photons) / np.sum(photons))
