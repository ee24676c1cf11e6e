"""Datasets built from the marts: a cohort's images, labels and splits, read from the preprocessed-image cache."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ingest.images import ImageCache, ValuesTransform, fill_cache
from models_ml.splits import split_members
from xrh.batches import BatchMapper
from xrh.warehouse import table_columns


@dataclass(frozen=True)
class Example:
    dicom_id: str
    path: Path
    label: int
    split: str


@dataclass(frozen=True)
class CohortData:
    examples: list[Example]
    class_names: list[str]

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    def data_hash(self) -> str:
        """SHA-256 of the (dicom_id, label, split) rows: what the model was trained and judged on."""
        text = "\n".join(f"{e.dicom_id},{e.label},{e.split}" for e in sorted(self.examples, key=lambda e: e.dicom_id))
        return hashlib.sha256(text.encode()).hexdigest()


def load_cohort(
    conn: sqlite3.Connection,
    mimic_cxr: Path,
    cohort: str,
    *,
    target: str = "label",
    scheme: str = "standard",
    seed: int = 0,
) -> CohortData:
    """The cohort's images with their split (from ``ml_dataset_splits``) and class index; ``mimic_cxr`` is the
    MIMIC-CXR project folder the DICOM paths are relative to.

    ``target`` is ``label`` (the cohort's own label) or any column of ``cohort_images`` (classes are its distinct
    values in sorted order; images where it is NULL are left out).
    """
    if target != "label" and target not in table_columns(conn, "cohort_images"):
        raise ValueError(f"target {target!r} is neither 'label' nor a column of cohort_images")
    rows = [
        (m["dicom_id"], m["dicom_path"], m[target], m["split"])
        for m in split_members(conn, cohort, scheme=scheme, seed=seed, target=target)
        if m["split"] != "unused" and m[target] is not None
    ]
    if not rows:
        raise ValueError(f"cohort {cohort!r} has no split images with a value of {target!r} (scheme {scheme})")
    if target == "label":
        names = conn.execute(
            "select distinct label, label_name from experiment_cohorts where cohort_name = ? order by 1", (cohort,)
        ).fetchall()
        class_names = [name or str(label) for label, name in names]  # the declaration's label_names
        index = {int(label): i for i, (label, _) in enumerate(names)}
    else:
        class_names = sorted({str(r[2]) for r in rows})
        index = {name: i for i, name in enumerate(class_names)}
    examples = [
        Example(dicom_id, mimic_cxr / path, index[value if target == "label" else str(value)], split)
        for dicom_id, path, value, split in rows
    ]
    return CohortData(examples, class_names)


def cache_images(
    examples: list[Example],
    cache: ImageCache | Sequence[ImageCache],
    map_batches: BatchMapper,
    *,
    transform: ValuesTransform | None = None,
) -> ImageCache | Sequence[ImageCache]:
    """Make sure every example is in ``cache`` (or each of several caches; decoding each DICOM once), its batches
    mapped by ``map_batches``; ``transform`` maps the presentation values first (a harmonization)."""
    images = [(e.dicom_id, e.path) for e in examples]
    _, errors = fill_cache(cache, images, transform=transform, map_batches=map_batches)
    if errors:
        raise ValueError(f"{len(errors)} images could not be preprocessed, e.g. {errors[0]}")
    return cache


class CachedImages(Dataset):
    """(image tensor 1 x S x S, class index) pairs from the cache, with an optional transform. ``examples`` are any
    items with a ``dicom_id`` and a ``label`` (:class:`Example`, ``harmonize.fitting.CohortImage``)."""

    def __init__(self, examples: Sequence[Example], cache: ImageCache, transform=None) -> None:
        self.examples = examples
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        image = torch.from_numpy(self.cache.load(example.dicom_id)).unsqueeze(0)
        if self.transform is not None:
            image = self.transform(image)
        return image, example.label


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse-frequency weights, so each class weighs the same in the loss."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / classes
    return torch.tensor(weights, dtype=torch.float32)
