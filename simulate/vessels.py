"""Pulmonary vessel trees grown in 3-D by the minimum-work laws of branching.

At each bifurcation a parent of radius ``r0`` splits its flow into shares ``q`` and ``1 - q``; Murray's law
(Murray, "The physiological principle of minimum work", PNAS 12 (1926)) gives the daughters' radii
``r1 = r0 q^(1/3)``, ``r2 = r0 (1 - q)^(1/3)`` (so ``r0^3 = r1^3 + r2^3``) and their angles to the parent's axis,
``cos a1 = (r0^4 + r1^4 - r2^4) / (2 r0^2 r1^2)`` (Murray, "The physiological principle of minimum work applied to the
angle of branching of arteries", J. Gen. Physiol. 9 (1926)): the thinner daughter leaves at the wider angle. Segment
length is about 3.5 diameters (length-to-diameter ratios of the human pulmonary arterial tree, Huang et al.,
"Morphometry of the human pulmonary vasculature", J. Appl. Physiol. 81 (1996)); the plane of each bifurcation turns
about 90 degrees from its parent's, as in the airway tree the arteries follow (Weibel, "Morphometry of the Human Lung",
1963). A branch stops at the lung's surface or below ``min_radius_cm``; finer vessels are part of the parenchyma's
power-law texture (``simulate.texture``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

LENGTH_PER_DIAMETER = 3.5


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / math.sqrt(vector[0] * vector[0] + vector[1] * vector[1] + vector[2] * vector[2])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Written out: numpy's cross costs tens of microseconds on 3-vectors, and a tree has thousands of them.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _rotate(vector: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of ``vector`` about the unit ``axis``."""
    cos, sin = math.cos(angle), math.sin(angle)
    along = (axis[0] * vector[0] + axis[1] * vector[1] + axis[2] * vector[2]) * (1.0 - cos)
    return vector * cos + _cross(axis, vector) * sin + axis * along


def murray_angles(r0: float, r1: float, r2: float) -> tuple[float, float]:
    """Branching angles (radians) of the two daughters to the parent's axis, by minimum work."""

    def angle(a: float, b: float) -> float:
        return float(np.arccos(np.clip((r0**4 + a**4 - b**4) / (2 * r0**2 * a**2), -1.0, 1.0)))

    return angle(r1, r2), angle(r2, r1)


def grow_tree(
    root: np.ndarray,
    direction: np.ndarray,
    radius_cm: float,
    inside: Callable[[np.ndarray], bool],
    rng: np.random.Generator,
    *,
    min_radius_cm: float = 0.1,
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Segments ``(start, end, radius)`` of one tree from ``root`` along ``direction``."""
    direction = _unit(np.asarray(direction, dtype=float))
    normal = _unit(_cross(direction, rng.normal(size=3)))
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    stack = [(np.asarray(root, dtype=float), direction, normal, float(radius_cm))]
    while stack:
        start, axis, plane_normal, radius = stack.pop()
        length = LENGTH_PER_DIAMETER * 2.0 * radius * rng.uniform(0.7, 1.3)
        end = start + axis * length
        if not inside(end):
            half = start + axis * length * 0.5
            if inside(half):
                segments.append((start, half, radius))
            continue
        segments.append((start, end, radius))
        share = rng.uniform(0.5, 0.85)
        r1, r2 = radius * share ** (1 / 3), radius * (1 - share) ** (1 / 3)
        a1, a2 = murray_angles(radius, r1, r2)
        turned = _unit(_rotate(plane_normal, axis, np.pi / 2 + rng.normal(0.0, 0.3)))
        for daughter_radius, angle in ((r1, a1), (r2, -a2)):
            if daughter_radius >= min_radius_cm:
                stack.append((end, _unit(_rotate(axis, plane_normal, angle)), turned, daughter_radius))
    return segments
