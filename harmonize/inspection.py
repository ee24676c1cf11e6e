"""What the harmonization benchmark measures of single images at their stored resolution, in worker processes: the
panel's pixel samples and thumbnails, and SSIM and PSNR against a paired reference rendering (simulated data written
with ``xrh simulate --paired``). A module of its own, so that workers import only what this needs."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from harmonize.fitting import CohortImage, Harmonization
from ingest.images import load_values, resize_longer_side, stored_values

PANEL_IMAGES_PER_GROUP = 64  # images whose pixels make a group's histogram in the panel
PANEL_PIXELS_PER_IMAGE = 4096  # pixels drawn from each (seeded by the image's id, the same for every method)
THUMBNAIL_SIDE = 384  # longer side of the panel's example images


@dataclass(frozen=True)
class Inspection:
    """What the evaluation needs of one image at stored resolution, besides its analysis image: the panel's pixel
    sample and thumbnail, and SSIM and PSNR against its paired reference rendering."""

    dicom_id: str
    path: Path
    paired_reference: Path | None = None
    sample: bool = False
    thumbnail: bool = False


@dataclass(frozen=True)
class Inspected:
    dicom_id: str
    ssim: float | None
    psnr: float | None
    sample: np.ndarray | None
    thumbnail: np.ndarray | None


def inspect_batch(harmonization: Harmonization | None, work: list[Inspection]) -> list[Inspected]:
    """Worker: harmonize each image at stored resolution and measure what :class:`Inspection` asks for."""
    out = []
    for item in work:
        dataset = pydicom.dcmread(item.path)
        values = stored_values(dataset)
        harmonized = harmonization(values, dataset) if harmonization else values
        ssim = psnr = None
        if item.paired_reference is not None:
            target = load_values(item.paired_reference).astype(np.float64)
            span = float(target.max() - target.min()) or 1.0
            image = harmonized.astype(np.float64)
            ssim = float(structural_similarity(image, target, data_range=span))
            psnr = float(peak_signal_noise_ratio(target, image, data_range=span))
        sample = None
        if item.sample:
            rng = np.random.default_rng(zlib.crc32(item.dicom_id.encode()))
            sample = harmonized.ravel()[rng.integers(0, harmonized.size, PANEL_PIXELS_PER_IMAGE)].astype(np.float32)
        thumbnail = resize_longer_side(harmonized, THUMBNAIL_SIDE) if item.thumbnail else None
        out.append(Inspected(item.dicom_id, ssim, psnr, sample, thumbnail))
    return out


def inspections(images: list[CohortImage], pairs: dict[str, Path]) -> list[Inspection]:
    """The images the panel and the fidelity scores need: the first test image of each group (thumbnail; the group's
    first image when it has none in the test split), the first ``PANEL_IMAGES_PER_GROUP`` images of each group (pixel
    sample), and every test image with a paired rendering."""
    groups = sorted({i.energy_group for i in images})
    in_test_first = sorted(images, key=lambda i: i.split != "test")  # stable: cohort order within each part
    examples = {next(i.dicom_id for i in in_test_first if i.energy_group == g) for g in groups}
    sampled = {i.dicom_id for g in groups for i in [i for i in images if i.energy_group == g][:PANEL_IMAGES_PER_GROUP]}
    return [
        Inspection(i.dicom_id, i.path, pairs.get(i.dicom_id), i.dicom_id in sampled, i.dicom_id in examples)
        for i in images
        if i.dicom_id in sampled or i.dicom_id in examples or i.dicom_id in pairs
    ]
