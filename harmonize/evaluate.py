"""The harmonization benchmark on a scanner cohort: how much of the scanner is left after each method.

For each method (and ``none``), fitted on the training split's reference-group images only:

- ``retrained_balanced_accuracy``: a scanner classifier trained from scratch on the harmonized training images and
  tested on the harmonized test images (goal: chance, 0.5), with a bootstrap 95% interval over test images;
- ``probe_balanced_accuracy``, ``mmd_squared`` (with its permutation p-value), ``frechet_distance``: a linear probe and
  the distances between scanner groups in the penultimate features of the unharmonized classifier (the latest
  training run of the cohort) applied to the harmonized images;
- ``ssim`` and ``psnr`` (simulated data written with ``xrh simulate --paired`` only): each harmonized test image of the
  other groups against the same phantom as the reference group's scanner rendered it, pixel-aligned (goal: higher
  than without harmonization). Only this evaluation reads the simulator's truth file, to find the reference profile;
- ``diagnostic_auc_*`` (with a diagnostic cohort): the Zech et al. experiment of ``harmonize.diagnostic``, a pathology
  model trained on the reference group and tested on it and on another group (goal: a smaller gap, the same mean).

``fallback_images`` (acquisition-aware methods, per group): how many of the evaluation's images the method left
(partly) as they were, because their scanner was not in the fit (e.g. the diagnostic cohort's other units) or their
header lacks what a stage needs.

``combat`` works on features, not images: ComBat (``harmonize.combat``, reference-batch mode) is fitted on the
training split's unharmonized features and applied to all, and only the feature metrics are computed for it.

Rows go to ``harm_evaluation`` (replaced per run); a PNG panel shows the same test images before and after each method
and the intensity histograms of each scanner group before and after.

Every image takes one streamed path, so memory does not grow with the cohort: each method is fitted from summed
statistics (:func:`harmonize.fitting.fit_parameters`); each image is decoded, harmonized at its stored resolution and
reduced to its analysis image in worker processes (or on Dask, from the flows), cached on disk per preprocessing, method
and parameters (``ingest.images.ImageCache``; a re-run after a crash finds what was cached, and the harmonized caches
are removed when the evaluation ends); training, features and the diagnostic model read that cache through
DataLoaders. The panel's histograms come from a fixed sample of pixels of a bounded number of images per group, and
SSIM and PSNR are computed image by image in the workers (``harmonize.inspection``).
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from harmonize import combat  # noqa: E402
from harmonize.diagnostic import diagnostic_design, diagnostic_rows  # noqa: E402
from harmonize.fitting import (  # noqa: E402
    CohortImage,
    Harmonization,
    cohort_images,
    fallback_reasons,
    fit_cohort,
)
from harmonize.inspection import Inspected, inspect_batch, inspections  # noqa: E402
from harmonize.methods import reads_acquisition  # noqa: E402
from harmonize.results import EVALUATION_EPOCHS, TABLES  # noqa: E402
from ingest.images import ImageCache, Preprocessing  # noqa: E402
from models_ml.dataset import CachedImages, cache_images  # noqa: E402
from models_ml.feature_statistics import frechet_distance, linear_probe, mmd_rbf  # noqa: E402
from models_ml.features import embed, latest_run, load_run_model  # noqa: E402
from models_ml.metrics import balanced_accuracy, bootstrap, confusion, percentile_interval  # noqa: E402
from models_ml.torch_setup import choose_device, loader_options  # noqa: E402
from models_ml.train import augmentation, fit_classifier, forward_all  # noqa: E402
from xrh.artifacts import record_artifacts  # noqa: E402
from xrh.batches import BatchMapper, batches_of, in_this_process  # noqa: E402
from xrh.progress import track  # noqa: E402
from xrh.settings import Settings  # noqa: E402
from xrh.tables import replace_run_rows  # noqa: E402


def _result(
    method: str,
    metric: str,
    grouping: str,
    value: float,
    ci_low: float | None = None,
    ci_high: float | None = None,
    p_value: float | None = None,
) -> dict[str, object]:
    """One ``harm_evaluation`` row (without its run id)."""
    return {"method": method, "metric": metric, "grouping": grouping, "value": value, "ci_low": ci_low,
            "ci_high": ci_high, "p_value": p_value}  # fmt: skip


def _bootstrap_balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, seed: int) -> tuple[float, float]:
    samples = bootstrap(
        lambda index: balanced_accuracy(confusion(labels[index], predicted[index], 2)),
        [np.arange(len(labels))],
        np.random.default_rng(seed),
    )
    return percentile_interval(samples)


def paired_references(settings: Settings, images: list[CohortImage], reference: str) -> dict[str, Path]:
    """dicom_id -> the reference scanner's pixel-aligned rendering of the same exposure, for the test images of the
    other groups; empty unless the data root holds ``simulation_paired/`` and ``simulation_truth.csv.gz``."""
    truth_file = settings.data_root / "simulation_truth.csv.gz"
    paired_root = settings.data_root / "simulation_paired"
    if not truth_file.exists() or not paired_root.is_dir():
        return {}
    with gzip.open(truth_file, "rt") as handle:
        profile_of = dict(pd.read_csv(handle, usecols=["dicom_id", "profile"]).itertuples(index=False, name=None))
    profiles = Counter(profile_of.get(i.dicom_id) for i in images if i.energy_group == reference)
    reference_profile = profiles.most_common(1)[0][0] if profiles else None
    candidates = {
        i.dicom_id: paired_root / str(reference_profile) / f"{i.dicom_id}.dcm"
        for i in images
        if i.split == "test" and i.energy_group != reference
    }
    return {dicom_id: path for dicom_id, path in candidates.items() if path.exists()}


def _fidelity_rows(method: str, inspected: list[Inspected], reference: str, seed: int) -> list[dict[str, object]]:
    """Mean SSIM and PSNR against the paired reference renderings, with bootstrap intervals."""
    rows = []
    rng = np.random.default_rng(seed)
    for metric in ("ssim", "psnr"):
        values = np.array([getattr(i, metric) for i in inspected if getattr(i, metric) is not None])
        if not len(values):
            continue
        means = bootstrap(lambda index, values=values: values[index].mean(), [np.arange(len(values))], rng)
        grouping = f"test images vs {reference} renderings"
        rows.append(_result(method, metric, grouping, float(values.mean()), *percentile_interval(means)))
    return rows


PanelColumn = tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def panel_column(inspected: list[Inspected], images: list[CohortImage]) -> PanelColumn:
    """What the panel shows of one method: the thumbnail of each group's example and each group's histogram of the
    sampled pixels (above their 5th percentile, which drops the background)."""
    group_of = {i.dicom_id: i.energy_group for i in images}
    examples = {group_of[i.dicom_id]: i.thumbnail for i in inspected if i.thumbnail is not None}
    histograms = {}
    for group in sorted(examples):
        values = np.concatenate([i.sample for i in inspected if i.sample is not None and group_of[i.dicom_id] == group])
        histograms[group] = np.histogram(values[values > np.percentile(values, 5)], bins=64, density=True)
    return dict(sorted(examples.items())), histograms


def _feature_rows(
    method: str,
    features: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    permutations: int,
    seed: int,
) -> list[dict[str, object]]:
    """Linear probe (on at most ``PROBE_MAX_IMAGES`` images of whole patients), MMD (with a normal 95% interval from
    its standard error; a subsample of large groups, see ``models_ml.feature_statistics.mmd_rbf``) and Frechet distance
    between the two scanner groups in ``features``."""
    probe, spread, _ = linear_probe(features, groups, subjects, seed=seed)
    names = sorted(set(groups))
    first, second = features[groups == names[0]], features[groups == names[1]]
    mmd = mmd_rbf(first, second, permutations=permutations, seed=seed)
    pair = f"{names[0]} vs {names[1]}"
    low, high = mmd.value - 1.96 * mmd.standard_error, mmd.value + 1.96 * mmd.standard_error  # normal approximation
    return [
        _result(method, "probe_balanced_accuracy", "all", probe, probe - spread, probe + spread),
        _result(method, "mmd_squared", pair, mmd.value, low, high, mmd.p_value),
        _result(method, "frechet_distance", pair, frechet_distance(first, second)),
    ]


def _distinct(images: list[CohortImage]) -> list[CohortImage]:
    return list({i.dicom_id: i for i in images}.values())


def evaluate(
    conn: sqlite3.Connection,
    settings: Settings,
    *,
    cohort: str,
    reference: str,
    methods: list[str],
    run_id: str,
    epochs: int = EVALUATION_EPOCHS,
    permutations: int = 200,
    diagnostic_cohort: str | None = None,
    external_group: str | None = None,
    map_batches: BatchMapper = in_this_process,
) -> list[dict[str, object]]:
    """Evaluate ``none`` and each method (image methods, and ``combat`` on features); write and return the
    ``harm_evaluation`` rows. With ``diagnostic_cohort``, also run the Zech et al. experiment from the reference group
    to ``external_group``. Image batches (fit statistics, harmonized analysis images, inspections) are mapped by
    ``map_batches``."""
    device = choose_device(settings.device)
    frozen, trained = load_run_model(conn, settings.cache_dir, latest_run(conn, cohort, target="label"), device)
    config = replace(trained, epochs=epochs, warmup_epochs=min(trained.warmup_epochs, epochs - 1))
    preprocessing = Preprocessing(size=config.image_size)
    images = cohort_images(conn, settings.mimic_cxr, cohort, seed=config.split_seed, scheme=config.split_scheme)
    design = (
        diagnostic_design(conn, settings.mimic_cxr, diagnostic_cohort, reference, external_group, settings.seed)
        if diagnostic_cohort
        else None
    )
    every_image = _distinct([*images, *(design.images() if design else [])])
    split = {name: [i for i in images if i.split == name] for name in ("train", "validate", "test")}
    test_labels = np.array([i.label for i in split["test"]], dtype=int)
    groups = np.array([i.energy_group for i in images])
    subjects = np.array([i.subject_id for i in images])
    inspection_batches = batches_of(inspections(images, paired_references(settings, images, reference)))
    folder = settings.cache_dir / "harmonized" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, panels, unharmonized_features, variants = [], {}, None, []
    for method in ["none", *(m for m in methods if m != "combat")]:
        harmonization = (
            None
            if method == "none"
            else Harmonization(
                method,
                fit_cohort(method, images, cohort, reference, map_batches, threads=settings.thread_count)[0],
                settings.thread_count,
            )
        )
        if harmonization and reads_acquisition(method):  # what the method could not serve, per scanner group
            reasons = fallback_reasons(harmonization, [i.path for i in every_image], map_batches)
            fell_back = Counter(i.energy_group for i, reason in zip(every_image, reasons, strict=True) if reason)
            rows += [_result(method, "fallback_images", group, count) for group, count in sorted(fell_back.items())]
        cache = ImageCache(settings.cache_dir, preprocessing, harmonization.variant() if harmonization else "")
        variants += [cache] if harmonization else []
        cache_images(every_image, cache, map_batches, transform=harmonization)
        done = map_batches(partial(inspect_batch, harmonization), inspection_batches)
        inspected = [i for batch in track(done, len(inspection_batches), "inspecting", unit="batches") for i in batch]
        panels[method] = panel_column(inspected, images)
        fitted = fit_classifier(
            config,
            2,
            CachedImages(split["train"], cache, augmentation(config.augment)),
            CachedImages(split["validate"], cache),
            np.array([i.label for i in split["train"]], dtype=int),
            device,
            folder / f"{method}.pt",
        )
        test_loader = DataLoader(
            CachedImages(split["test"], cache), batch_size=config.batch_size, **loader_options(device)
        )
        predicted = forward_all(fitted.model, test_loader, device)[0].argmax(dim=1).numpy()
        accuracy = balanced_accuracy(confusion(test_labels, predicted, 2))
        low, high = _bootstrap_balanced_accuracy(test_labels, predicted, settings.seed)
        rows.append(_result(method, "retrained_balanced_accuracy", "test", accuracy, low, high))
        features, _ = embed(frozen, CachedImages(images, cache), device)
        if method == "none":
            unharmonized_features = features
        rows += _feature_rows(method, features, groups, subjects, permutations, settings.seed)
        rows += _fidelity_rows(method, inspected, reference, settings.seed)
        if design:
            rows += [
                _result(method, *row)
                for row in diagnostic_rows(
                    design, cache, config, device, folder / f"{method}-diagnostic.pt", settings.seed
                )
            ]
    if "combat" in methods:
        training = np.array([i.split == "train" for i in images])
        params = combat.fit(unharmonized_features[training], groups[training], reference=reference)
        adjusted = combat.apply(unharmonized_features, groups, params)
        rows += _feature_rows("combat", adjusted, groups, subjects, permutations, settings.seed)
    for variant in variants:  # working files of this evaluation, a full set per method: not kept
        shutil.rmtree(variant.folder, ignore_errors=True)
    write_panel(panels, folder / "panel.png", reference)
    record_artifacts(conn, settings.cache_dir, run_id, {"panel": folder / "panel.png"})
    replace_run_rows(conn, {TABLES["harm_evaluation"]: rows}, run_id)
    return rows


def write_panel(panels: dict[str, PanelColumn], path: Path, reference: str) -> Path:
    """One test image per scanner group before and after each method, and each group's intensity histogram."""
    methods = list(panels)
    groups = list(panels[methods[0]][0])
    figure, axes = plt.subplots(
        len(groups) + 1, len(methods), figsize=(2.2 * len(methods), 2.4 * (len(groups) + 1)), squeeze=False
    )
    for column, method in enumerate(methods):
        examples, histograms = panels[method]
        for row, group in enumerate(groups):
            axes[row][column].imshow(examples[group], cmap="gray")
            axes[row][column].set_title(f"{method}\n{group}", fontsize=7)
            axes[row][column].axis("off")
        histogram_axis = axes[len(groups)][column]
        for group in groups:
            counts, edges = histograms[group]
            histogram_axis.stairs(counts, edges, label=group)
        histogram_axis.set_yticks([])
        histogram_axis.tick_params(labelsize=6)
        histogram_axis.set_xlabel("presentation value (stored units)", fontsize=6)
        if column == 0:
            histogram_axis.set_ylabel("density (sampled body pixels)", fontsize=6)
        histogram_axis.legend(title="scanner group", fontsize=6, title_fontsize=6)
    figure.suptitle(f"harmonization to {reference}: test images and intensity histograms per scanner", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
