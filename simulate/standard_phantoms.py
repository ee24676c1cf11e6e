"""Standard phantoms taken with a given beam and detector, without any vendor's processing: what a beam and a detector
alone do to a chest radiograph's texture.

The acquisition-aware harmonization needs this to tell a scanner's physics from its vendor's processing: both shape
its images' power spectrum, and only the processing is to be undone. The same phantoms (no findings, both sexes, one
seed per phantom) are projected at one fixed geometry, so that a difference between two beams' images is the beam's,
grid's and detector's, not magnification's; each is exposed with the beam's own source-to-image distance (which sets
the fluence, hence the noise), and presented as ``-log`` of the signal in a fixed percentile window, the common part of
every vendor's chain (:func:`simulate.processing.log_normalize`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulate.detector import Detector, Technique, acquire, unattenuated_signal
from simulate.phantom import Grid, project, random_anatomy, random_findings
from simulate.processing import log_normalize

PROJECTION = "PA"
PROJECTION_SOURCE_TO_IMAGE_CM = 180.0
WINDOW_PERCENTILES = (1.0, 99.0)


def standard_log_images(
    technique: Technique, detector: Detector, spacing_mm: float, field_mm: float, count: int
) -> Iterator[np.ndarray]:
    """``count`` standard phantoms' log images (float32, the central ``field_mm`` square at ``spacing_mm``), taken
    with ``technique`` and ``detector``; the same phantoms and noise seeds for every beam, so that two beams' images
    are paired."""
    side = max(16, round(field_mm / spacing_mm))
    grid = Grid(side, side, spacing_mm / 10.0)
    field = np.ones((side, side), dtype=bool)
    direct = unattenuated_signal(technique, detector, spacing_mm / 10.0)
    for index in range(count):
        rng = np.random.default_rng([index, 20261202])
        anatomy = random_anatomy(rng, "F" if index % 2 else "M")
        maps = project(
            anatomy,
            random_findings(rng, frozenset()),
            grid,
            view=PROJECTION,
            source_to_image_cm=PROJECTION_SOURCE_TO_IMAGE_CM,
        )
        raw = acquire(maps, technique, detector, spacing_mm / 10.0, rng)
        yield log_normalize(raw, field, WINDOW_PERCENTILES, direct).astype(np.float32)
