"""The diagnostic-utility experiment: does a pathology model travel from one scanner group to another, and does
harmonization help it travel?

Zech, Badgeley, Liu, Costa, Titano and Oermann, "Variable generalization performance of a deep learning model to detect
pneumonia in chest radiographs: a cross-sectional study", PLOS Medicine 15(11): e1002683 (2018).

A pathology model is trained on one scanner group only (the internal group: its training and validation split images of
a diagnostic cohort such as ``abnormal_vs_healthy``) and tested on held-out images of that group and on images of
another group it never saw (the external group). Before and after harmonization, the AUC per group, their mean and the
gap (internal minus external) say whether the model travels: the goal is a smaller gap without a lower mean.

Label-matched subsets: AUC does not depend on prevalence in expectation, but its variance and the case mix behind it
do, so both test sets hold the same number of positive and of negative images (per label, the smaller group's count,
drawn with a seed). Internal test images come from the test split; external images from patients with no image in
the internal training or validation splits (any split, as the model never saw that group). Neither holds an image a
harmonization method was fitted on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from harmonize.fitting import CohortImage, cohort_images
from ingest.images import ImageCache
from models_ml.config import TrainConfig
from models_ml.dataset import CachedImages
from models_ml.metrics import auc, bootstrap, percentile_interval
from models_ml.torch_setup import loader_options
from models_ml.train import augmentation, fit_classifier, forward_all


@dataclass(frozen=True)
class DiagnosticDesign:
    cohort: str
    internal: str
    external: str
    train: list[CohortImage]
    validate: list[CohortImage]
    internal_test: list[CohortImage]
    external_test: list[CohortImage]

    def images(self) -> list[CohortImage]:
        return [*self.train, *self.validate, *self.internal_test, *self.external_test]


def _labels(images: list[CohortImage]) -> np.ndarray:
    return np.array([i.label for i in images], dtype=int)


def label_matched(
    first: list[CohortImage], second: list[CohortImage], rng: np.random.Generator
) -> tuple[list[CohortImage], list[CohortImage]]:
    """Subsets of both lists with the same number of images of each label: per label, the smaller list's count."""
    chosen_first, chosen_second = [], []
    for label in sorted({i.label for i in first + second}):
        in_first = [i for i in first if i.label == label]
        in_second = [i for i in second if i.label == label]
        count = min(len(in_first), len(in_second))
        chosen_first += [in_first[k] for k in sorted(rng.choice(len(in_first), count, replace=False))]
        chosen_second += [in_second[k] for k in sorted(rng.choice(len(in_second), count, replace=False))]
    return chosen_first, chosen_second


def diagnostic_design(
    conn: sqlite3.Connection,
    mimic_cxr: Path,
    cohort: str,
    internal: str,
    external: str,
    seed: int,
    *,
    fitted_on: Collection[str] = (),
) -> DiagnosticDesign:
    """The training, validation and label-matched test images of the experiment (see the module docstring); ``seed``
    names the cohort's split (``xrh split --seed``) and draws the label-matched subsets. ``fitted_on``: the dicom_ids
    a harmonization may be fitted on, which no test set may hold (a fitted method has seen them)."""
    images = cohort_images(conn, mimic_cxr, cohort, seed=seed)
    labels = sorted({i.label for i in images})
    if labels != [0, 1]:
        raise ValueError(f"diagnostic cohort {cohort!r} must have labels 0 and 1, has {labels}")
    groups = sorted({i.energy_group for i in images})
    for group in (internal, external):
        if group not in groups:
            raise ValueError(f"diagnostic cohort {cohort!r} has no images of group {group!r}; groups: {groups}")
    train = [i for i in images if i.energy_group == internal and i.split == "train"]
    validate = [i for i in images if i.energy_group == internal and i.split == "validate"]
    seen_subjects = {i.subject_id for i in train + validate}
    fitted = set(fitted_on)
    unfitted = [i for i in images if i.dicom_id not in fitted]
    internal_candidates = [i for i in unfitted if i.energy_group == internal and i.split == "test"]
    external_candidates = [i for i in unfitted if i.energy_group == external and i.subject_id not in seen_subjects]
    internal_test, external_test = label_matched(internal_candidates, external_candidates, np.random.default_rng(seed))
    for name, subset in (("training", train), ("validation", validate), ("label-matched test", internal_test)):
        if {i.label for i in subset} != {0, 1}:
            raise ValueError(
                f"diagnostic cohort {cohort!r}: the {name} images of {internal!r} need both labels, "
                f"have {sorted({i.label for i in subset})} ({len(subset)} images)"
            )
    return DiagnosticDesign(cohort, internal, external, train, validate, internal_test, external_test)


def _bootstrap_aucs(labels: np.ndarray, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """AUCs of bootstrap samples stratified by label (positives and negatives resampled separately)."""
    strata = [np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)]
    return bootstrap(lambda index: auc(labels[index], probabilities[index]), strata, rng)


def diagnostic_rows(
    design: DiagnosticDesign,
    cache: ImageCache,
    config: TrainConfig,
    device: torch.device,
    checkpoint: Path,
    seed: int,
) -> tuple[list[tuple[str, str, float, float, float]], np.ndarray]:
    """Train the pathology model on the internal group and test it on both groups.

    ``cache`` holds the (harmonized or original) analysis image of every image of the design. Returns rows
    ``(metric, grouping, value, ci_low, ci_high)`` for ``diagnostic_auc_internal``, ``diagnostic_auc_external``,
    ``diagnostic_auc_mean`` and ``diagnostic_auc_gap`` with stratified bootstrap 95% intervals, and
    ``diagnostic_test_images`` and ``diagnostic_test_positives`` per group; and the mean AUC's bootstrap samples. The
    resamples depend on ``seed`` and the test labels only, so two calls on the same design draw the same ones: the
    difference of their samples is a paired interval.
    """
    train_labels = _labels(design.train)
    fitted = fit_classifier(
        config,
        2,
        CachedImages(design.train, cache, augmentation(config.augment)),
        CachedImages(design.validate, cache),
        train_labels,
        device,
        checkpoint,
    )
    rng = np.random.default_rng(seed)
    results = {}
    for name, images in (("internal", design.internal_test), ("external", design.external_test)):
        labels = _labels(images)
        loader = DataLoader(CachedImages(images, cache), batch_size=config.batch_size, **loader_options(device))
        probabilities = torch.softmax(forward_all(fitted.model, loader, device)[0], dim=1).numpy()
        results[name] = (auc(labels, probabilities), _bootstrap_aucs(labels, probabilities, rng))
    (internal, internal_samples), (external, external_samples) = results["internal"], results["external"]

    pair = f"{design.internal} - {design.external}"
    internal_labels, external_labels = _labels(design.internal_test), _labels(design.external_test)
    mean_samples = (internal_samples + external_samples) / 2
    rows = [
        ("diagnostic_test_images", design.internal, len(internal_labels), None, None),
        ("diagnostic_test_images", design.external, len(external_labels), None, None),
        ("diagnostic_test_positives", design.internal, int(internal_labels.sum()), None, None),
        ("diagnostic_test_positives", design.external, int(external_labels.sum()), None, None),
        ("diagnostic_auc_internal", design.internal, internal, *percentile_interval(internal_samples)),
        ("diagnostic_auc_external", design.external, external, *percentile_interval(external_samples)),
        ("diagnostic_auc_mean", pair, (internal + external) / 2, *percentile_interval(mean_samples)),
        ("diagnostic_auc_gap", pair, internal - external, *percentile_interval(internal_samples - external_samples)),
    ]
    return rows, mean_samples
