"""The harmonization benchmark on a scanner cohort: how much of the scanner is left after each method.

The powered benchmark's protocol (``harmonize.bench``) on a cohort of real (or simulated) images: every statistic is
computed on images that trained neither the model it reads nor any harmonization fit. For each method (and ``none``),
fitted on the training split only:

- ``retrained_balanced_accuracy``: a scanner classifier trained from scratch on the harmonized training images and
  tested on the harmonized test images (goal: chance, 0.5), with a bootstrap 95% interval over test images. It reads
  the analysis image of :func:`harmonize.config.field_preprocessing`: a centred ``field_mm`` square, rank-equalized,
  so that neither collimation, matrix, padding nor a global statistic is left to read (``field_mm`` 0: the whole
  frame), at the evaluation's ``size`` (default: the trained classifier's);
- the shortcut controls of ``harmonize.controls`` on the same analysis images (``outline_only_balanced_accuracy``,
  ``scalar_cues_balanced_accuracy``; above ``CONTROL_LIMIT`` the retrained classifier may be reading a trivial cue) and,
  with a field, on whole frames (``frame_*``: how much the frame alone tells the scanners apart);
- ``probe_balanced_accuracy`` (linear) and ``probe_rbf_balanced_accuracy``: probes on the penultimate features of the
  unharmonized classifier (the cohort's latest training run) applied to the harmonized images, fitted on the
  validation images and scored on the test images; ``mmd_squared`` (with its permutation p-value) and
  ``frechet_distance`` between the scanner groups' test features;
- ``ssim`` and ``psnr`` (simulated data written with ``xrh simulate --paired`` only): each harmonized test image of the
  other groups against the same phantom as the reference group's scanner rendered it, pixel-aligned (goal: higher
  than without harmonization). Only this evaluation reads the simulator's truth file, to find the reference profile;
- ``diagnostic_auc_*`` (with a diagnostic cohort): the Zech et al. experiment of ``harmonize.diagnostic``, a pathology
  model trained on the reference group and tested on it and on another group (goal: a smaller gap, the same mean);
  neither test set holds an image of the scanner cohort's training split, which the fits read;
- ``retrained_distance_difference``: the method's ``|BA - 0.5|`` minus none's, paired over the same test images and
  bootstrap resamples, and the ranking: ``rank`` for a method whose difference's interval lies below 0 with its
  controls at or under ``CONTROL_LIMIT`` and its mean diagnostic AUC at most ``NON_INFERIORITY`` below none's (the
  row's grouping says how it was earned), ``not_ranked`` with the reasons for every other.

``left_out_images`` (per group, with a field): how many of the cohort's images were left out of the evaluation, every
split and every fit, because their header gives no pixel spacing (real archives write ``0\\0``); the retrained
classifier's row says how many.

``fallback_images`` (acquisition-aware methods, per group): how many of the evaluation's images the method left
(partly) as they were, because their scanner was not in the fit (e.g. the diagnostic cohort's other units) or their
header lacks what a stage needs.

``combat`` works on features, not images: ComBat (``harmonize.combat``, reference-batch mode) is fitted on the
training images' unharmonized features and applied to the validation and test images' features, and only the feature
metrics are computed for it (it is not ranked).

Rows go to ``harm_evaluation`` (replaced per run); a PNG panel shows the same test images before and after each method
and the intensity histograms of each scanner group before and after.

Every image takes one streamed path, so memory does not grow with the cohort: each method is fitted from summed
statistics (:func:`harmonize.fitting.fit_parameters`); each image is decoded and harmonized once at its stored
resolution and reduced to its analysis images (the whole frame, and for the scanner cohort's images the field) in
worker processes (or on Dask, from the flows), cached on disk per preprocessing, method and parameters
(``ingest.images.ImageCache``; a re-run after a crash finds what was cached, and the harmonized caches are removed
when the evaluation ends); training, features and the diagnostic model read that cache through DataLoaders. The
panel's histograms come from a fixed sample of pixels of a bounded number of images per group, and SSIM and PSNR are
computed image by image in the workers (``harmonize.inspection``).
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from harmonize import combat  # noqa: E402
from harmonize.common import Params  # noqa: E402
from harmonize.config import ANALYSIS_FIELD_MM, field_preprocessing  # noqa: E402
from harmonize.controls import CONTROL_LIMIT, NON_INFERIORITY, control_scores  # noqa: E402
from harmonize.diagnostic import diagnostic_design, diagnostic_rows  # noqa: E402
from harmonize.fitting import (  # noqa: E402
    CohortImage,
    Harmonization,
    cohort_images,
    fallback_reasons,
    fit_cohort,
    without_pixel_spacing,
)
from harmonize.inspection import Inspected, inspect_batch, inspections  # noqa: E402
from harmonize.methods import reads_acquisition  # noqa: E402
from harmonize.results import EVALUATION_EPOCHS, TABLES  # noqa: E402
from ingest.images import ImageCache, Preprocessing  # noqa: E402
from models_ml.dataset import CachedImages, cache_images  # noqa: E402
from models_ml.feature_statistics import frechet_distance, held_out_probe, mmd_rbf  # noqa: E402
from models_ml.features import embed, latest_run, load_run_model  # noqa: E402
from models_ml.metrics import (  # noqa: E402
    balanced_accuracy,
    balanced_accuracy_half_width,
    bootstrap,
    confusion,
    percentile_interval,
    test_images_for_half_width,
)
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


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


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


@dataclass(frozen=True)
class PanelColumn:
    """What the panel shows of one method: each group's example test image (a thumbnail at stored resolution), the
    same image's analysis field when the retrained classifier reads one (group -> image; empty otherwise), and each
    group's histogram of sampled pixels."""

    examples: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    histograms: dict[str, tuple[np.ndarray, np.ndarray]]


def panel_column(inspected: list[Inspected], images: list[CohortImage], fields: ImageCache | None) -> PanelColumn:
    """The panel's column of one method: the thumbnails, the examples' analysis fields from ``fields`` (None: the
    analysis reads whole frames) and each group's histogram of the sampled pixels (above their 5th percentile, which
    drops the background)."""
    group_of = {i.dicom_id: i.energy_group for i in images}
    example_of = {group_of[i.dicom_id]: i for i in inspected if i.thumbnail is not None}
    histograms = {}
    for group in sorted(example_of):
        values = np.concatenate([i.sample for i in inspected if i.sample is not None and group_of[i.dicom_id] == group])
        histograms[group] = np.histogram(values[values > np.percentile(values, 5)], bins=64, density=True)
    return PanelColumn(
        {group: example_of[group].thumbnail for group in sorted(example_of)},
        {group: fields.load(example_of[group].dicom_id) for group in sorted(example_of)} if fields else {},
        histograms,
    )


def _held_out_features_rows(
    method: str,
    validate: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    permutations: int,
    seed: int,
) -> list[dict[str, object]]:
    """The scanner in the frozen classifier's features, on images that trained neither it nor a harmonization fit:
    linear and RBF-SVM probes fitted on the validation images' (features, labels) and scored on the test images', with
    bootstrap intervals over test images; MMD (a normal 95% interval from its standard error) and Frechet distance
    between the scanner groups' test features."""
    (fit_features, fit_labels), (test_features, test_labels) = validate, test
    rows = []
    for kind, metric in (("linear", "probe_balanced_accuracy"), ("rbf", "probe_rbf_balanced_accuracy")):
        predicted = (held_out_probe(fit_features, fit_labels, test_features, kind) > 0.5).astype(int)
        value = balanced_accuracy(confusion(test_labels, predicted, 2))
        rows.append(_result(method, metric, "test", value, *_bootstrap_balanced_accuracy(test_labels, predicted, seed)))
    first, second = test_features[test_labels == 0], test_features[test_labels == 1]
    mmd = mmd_rbf(first, second, permutations=permutations, seed=seed)
    low, high = mmd.value - 1.96 * mmd.standard_error, mmd.value + 1.96 * mmd.standard_error  # normal approximation
    return [
        *rows,
        _result(method, "mmd_squared", "test", mmd.value, low, high, mmd.p_value),
        _result(method, "frechet_distance", "test", frechet_distance(first, second)),
    ]


def _control_rows(
    method: str, train: list[CohortImage], test: list[CohortImage], caches: dict[str, tuple[str, ImageCache]], seed: int
) -> tuple[list[dict[str, object]], dict[str, float]]:
    """The outline-only and scalar-cue controls (``harmonize.controls``) on each kind of analysis image (``caches``:
    metric prefix -> (grouping, cache); the prefix ``""`` names the images the retrained classifier reads), trained on
    ``train`` and scored on ``test``: their rows, and the balanced accuracies of the controls on the retrained
    classifier's images (the ranking's guard; whole frames only inform)."""
    labels = np.array([i.label for i in test], dtype=int)
    rows, guard = [], {}
    for prefix, (grouping, cache) in caches.items():
        for name, scores in control_scores(train, test, cache).items():
            predicted = (scores > 0.5).astype(int)
            metric = f"{prefix}{name}_balanced_accuracy"
            value = balanced_accuracy(confusion(labels, predicted, 2))
            rows.append(
                _result(method, metric, grouping, value, *_bootstrap_balanced_accuracy(labels, predicted, seed))
            )
            if not prefix:
                guard[metric] = value
    return rows, guard


@dataclass(frozen=True)
class _Judged:
    """What the ranking needs of one method: the retrained classifier's test predictions, its controls on the
    analysis images, and the diagnostic model's mean AUC with its bootstrap samples, paired across methods (None
    without a diagnostic cohort)."""

    predicted: np.ndarray
    controls: dict[str, float]
    diagnostic_auc_mean: float | None
    diagnostic_auc_mean_samples: np.ndarray | None


def _ranking_rows(judged: dict[str, _Judged], labels: np.ndarray, seed: int) -> list[dict[str, object]]:
    """Per method, the paired difference of ``|BA - 0.5|`` against ``none`` over the same test images (the same
    bootstrap resamples for every method, so the interval is paired), and a ``rank`` row for the methods that earn one
    (its grouping says how), a ``not_ranked`` row saying why for the others: a method ranks when its difference's 95%
    interval lies below 0, its controls stay at or under ``CONTROL_LIMIT`` and its mean diagnostic AUC is at most
    ``NON_INFERIORITY`` below ``none``'s (the point estimate decides, as on the bench; the paired interval of that
    difference is written beside it, so a reader sees when the guard is decided by noise)."""
    none = judged["none"]
    strata = [np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)]
    everything = np.arange(len(labels))

    def distance(predicted: np.ndarray, index: np.ndarray) -> float:
        return abs(balanced_accuracy(confusion(labels[index], predicted[index], 2)) - 0.5)

    rows = [_result("none", "not_ranked", "the baseline every method is compared with", None)]
    qualified = []
    for method, own in judged.items():
        if method == "none":
            continue

        def difference(index, own=own):
            return distance(own.predicted, index) - distance(none.predicted, index)

        value = difference(everything)
        low, high = percentile_interval(bootstrap(difference, strata, np.random.default_rng(seed)))
        rows.append(_result(method, "retrained_distance_difference", "|BA - 0.5| against none", value, low, high))
        reasons = [f"{metric} {v:.3f} above {CONTROL_LIMIT}" for metric, v in own.controls.items() if v > CONTROL_LIMIT]
        if own.diagnostic_auc_mean is not None:  # with a diagnostic cohort, every method has one
            change = own.diagnostic_auc_mean - none.diagnostic_auc_mean
            low_auc, high_auc = percentile_interval(own.diagnostic_auc_mean_samples - none.diagnostic_auc_mean_samples)
            grouping = "mean diagnostic AUC against none, paired over the same test images"
            rows.append(_result(method, "diagnostic_auc_mean_difference", grouping, change, low_auc, high_auc))
            if change < -NON_INFERIORITY:
                reasons.append(
                    f"mean diagnostic AUC {-change:.3f} below none's (at most {NON_INFERIORITY}; "
                    f"interval {low_auc:+.3f} to {high_auc:+.3f})"
                )
        if high >= 0:
            reasons.append(
                f"not separated from none (paired difference {value:+.3f}, interval {low:+.3f} to {high:+.3f})"
            )
        if reasons:
            rows.append(_result(method, "not_ranked", "; ".join(reasons), None))
        else:
            qualified.append((value, method, low, high))
    for rank, (value, method, low, high) in enumerate(sorted(qualified), start=1):
        basis = f"paired |BA - 0.5| difference {value:+.3f} (interval {low:+.3f} to {high:+.3f})"
        rows.append(_result(method, "rank", basis, rank))
    return rows


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
    size: int | None = None,
    field_mm: float = ANALYSIS_FIELD_MM,
    permutations: int = 200,
    diagnostic_cohort: str | None = None,
    external_group: str | None = None,
    map_batches: BatchMapper = in_this_process,
    bone_model: Params | None = None,
) -> list[dict[str, object]]:
    """Evaluate ``none`` and each method (image methods, and ``combat`` on features); write and return the
    ``harm_evaluation`` rows. The retrained classifier and the controls read a centred ``field_mm`` square,
    rank-equalized (0: the whole frame), and the pathology model whole frames, both at ``size`` pixels (default: the
    frozen classifier's image size); the frozen classifier's features always read its own. With
    ``diagnostic_cohort``, also run the Zech et al. experiment from the reference group to ``external_group``. Image
    batches (fit statistics, analysis images, inspections) are mapped by ``map_batches``; ``bone_model`` is what a
    method with an ``energy`` stage reads."""
    device = choose_device(settings.device)
    frozen, trained = load_run_model(conn, settings.cache_dir, latest_run(conn, cohort, target="label"), device)
    config = replace(
        trained,
        epochs=epochs,
        warmup_epochs=min(trained.warmup_epochs, epochs - 1),
        image_size=size or trained.image_size,
    )
    frozen_frame = Preprocessing(size=trained.image_size)
    evaluation_frame = Preprocessing(size=config.image_size)
    analysis = field_preprocessing(config.image_size, field_mm) if field_mm else evaluation_frame
    # The scale a judgement was made at is part of it: a 64-pixel classifier sees less than a 128-pixel one.
    size_name = f"at {config.image_size} px"
    analysis_name = f"centred {field_mm:g} mm field {size_name}, equalized" if field_mm else f"whole frame {size_name}"
    frame_name = f"whole frame at {trained.image_size} px"
    images = cohort_images(conn, settings.mimic_cxr, cohort, seed=config.split_seed, scheme=config.split_scheme)
    # A field in mm needs a pixel spacing: images without one are left out of every split (and every fit), and counted.
    unspaced = without_pixel_spacing(conn, images) if field_mm else set()
    left_out = Counter(i.energy_group for i in images if i.dicom_id in unspaced)
    images = [i for i in images if i.dicom_id not in unspaced]
    if not images:
        raise ValueError(
            f"no image of cohort {cohort!r} has a pixel spacing, so no {field_mm:g} mm field can be cut; "
            "analyse whole frames with --field-mm 0"
        )
    split = {name: [i for i in images if i.split == name] for name in ("train", "validate", "test")}
    design = (
        diagnostic_design(
            conn,
            settings.mimic_cxr,
            diagnostic_cohort,
            reference,
            external_group,
            settings.seed,
            fitted_on={i.dicom_id for i in split["train"]},  # every fit reads the training split only
        )
        if diagnostic_cohort
        else None
    )
    every_image = _distinct([*images, *(design.images() if design else [])])
    in_cohort = {i.dicom_id for i in images}
    diagnostic_only = [i for i in every_image if i.dicom_id not in in_cohort]
    test_labels = np.array([i.label for i in split["test"]], dtype=int)
    # What the test set can resolve, said with every result: the interval at chance, and the size a +-0.025 one needs.
    retrained_on = (
        f"{len(test_labels)} test images (95% interval about ±{balanced_accuracy_half_width(len(test_labels)):.3f} at "
        f"chance; ±0.025 needs {test_images_for_half_width(0.025):,}), {analysis_name}"
        + (f"; {_count(sum(left_out.values()), 'image')} without a pixel spacing left out" if left_out else "")
    )
    inspection_batches = batches_of(inspections(images, paired_references(settings, images, reference)))
    folder = settings.cache_dir / "harmonized" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, panels, judged, variants = [], {}, {}, []
    rows += [
        _result("none", "left_out_images", f"{group}: no pixel spacing, so no {field_mm:g} mm field", count)
        for group, count in sorted(left_out.items())
    ]
    unharmonized_features = {}  # split -> (features, labels)
    for method in ["none", *(m for m in methods if m != "combat")]:
        harmonization = (
            None
            if method == "none"
            else Harmonization(
                method,
                fit_cohort(
                    method, images, cohort, reference, map_batches, threads=settings.thread_count, bone_model=bone_model
                )[0],
                settings.thread_count,
            )
        )
        if harmonization and reads_acquisition(method):  # what the method could not serve, per scanner group
            reasons = fallback_reasons(harmonization, [i.path for i in every_image], map_batches)
            fell_back = Counter(i.energy_group for i, reason in zip(every_image, reasons, strict=True) if reason)
            rows += [_result(method, "fallback_images", group, count) for group, count in sorted(fell_back.items())]
        variant = harmonization.variant() if harmonization else ""
        frames = ImageCache(settings.cache_dir, frozen_frame, variant)  # what the frozen model reads
        whole = ImageCache(settings.cache_dir, evaluation_frame, variant)  # what the pathology model reads
        fields = ImageCache(settings.cache_dir, analysis, variant)  # what the retrained classifier and controls read
        caches = list({c.folder: c for c in (frames, whole, fields)}.values())  # one each where sizes agree
        variants += caches if harmonization else []
        cache_images(images, caches, map_batches, transform=harmonization)
        if diagnostic_only:  # the pathology model reads whole frames only
            cache_images(diagnostic_only, whole, map_batches, transform=harmonization)
        done = map_batches(partial(inspect_batch, harmonization), inspection_batches)
        inspected = [i for batch in track(done, len(inspection_batches), "inspecting", unit="batches") for i in batch]
        panels[method] = panel_column(inspected, images, fields if field_mm else None)
        fitted = fit_classifier(
            config,
            2,
            CachedImages(split["train"], fields, augmentation(config.augment)),
            CachedImages(split["validate"], fields),
            np.array([i.label for i in split["train"]], dtype=int),
            device,
            folder / f"{method}.pt",
        )
        test_loader = DataLoader(
            CachedImages(split["test"], fields), batch_size=config.batch_size, **loader_options(device)
        )
        predicted = forward_all(fitted.model, test_loader, device)[0].argmax(dim=1).numpy()
        accuracy = balanced_accuracy(confusion(test_labels, predicted, 2))
        interval = _bootstrap_balanced_accuracy(test_labels, predicted, settings.seed)
        rows.append(_result(method, "retrained_balanced_accuracy", retrained_on, accuracy, *interval))
        kinds = {"": (analysis_name, fields), **({"frame_": (frame_name, frames)} if field_mm else {})}
        control_rows, controls = _control_rows(method, split["train"], split["test"], kinds, settings.seed)
        rows += control_rows
        features = {  # ComBat is fitted on the training images' unharmonized features
            name: (
                embed(frozen, CachedImages(split[name], frames), device)[0],
                np.array([i.label for i in split[name]]),
            )
            for name in ("train", "validate", "test")
            if name != "train" or method == "none"
        }
        if method == "none":
            unharmonized_features = features
        rows += _held_out_features_rows(method, features["validate"], features["test"], permutations, settings.seed)
        rows += _fidelity_rows(method, inspected, reference, settings.seed)
        diagnostic, mean_auc_samples = [], None
        if design:
            found, mean_auc_samples = diagnostic_rows(
                design, whole, config, device, folder / f"{method}-diagnostic.pt", settings.seed
            )
            diagnostic = [_result(method, *row) for row in found]
        rows += diagnostic
        mean_auc = next((row["value"] for row in diagnostic if row["metric"] == "diagnostic_auc_mean"), None)
        judged[method] = _Judged(predicted, controls, mean_auc, mean_auc_samples)
    rows += _ranking_rows(judged, test_labels, settings.seed)
    if "combat" in methods:
        # Fitted on the training images' features with their groups, applied to the held-out ones.
        groups = {name: np.array([i.energy_group for i in split[name]]) for name in unharmonized_features}
        params = combat.fit(unharmonized_features["train"][0], groups["train"], reference=reference)
        adjusted = {
            name: (combat.apply(features, groups[name], params), labels)
            for name, (features, labels) in unharmonized_features.items()
            if name != "train"
        }
        rows += _held_out_features_rows("combat", adjusted["validate"], adjusted["test"], permutations, settings.seed)
        rows.append(_result("combat", "not_ranked", "works on features: no images to retrain a classifier on", None))
    for variant in variants:  # working files of this evaluation, a full set per method: not kept
        shutil.rmtree(variant.folder, ignore_errors=True)
    write_panel(panels, folder / "panel.png", reference)
    record_artifacts(conn, settings.cache_dir, run_id, {"panel": folder / "panel.png"})
    replace_run_rows(conn, {TABLES["harm_evaluation"]: rows}, run_id)
    return rows


def write_panel(panels: dict[str, PanelColumn], path: Path, reference: str) -> Path:
    """One test image per scanner group before and after each method, whole and (when the analysis reads one) its
    analysis field, and each group's intensity histogram."""
    methods = list(panels)
    first = panels[methods[0]]
    pictures = [(group, False) for group in first.examples] + [(group, True) for group in first.fields]
    figure, axes = plt.subplots(
        len(pictures) + 1, len(methods), figsize=(2.2 * len(methods), 2.4 * (len(pictures) + 1)), squeeze=False
    )
    for column, method in enumerate(methods):
        panel = panels[method]
        for row, (group, is_field) in enumerate(pictures):
            if is_field:  # rank-equalized values in [0, 1]
                axes[row][column].imshow(panel.fields[group], cmap="gray", vmin=0.0, vmax=1.0)
                axes[row][column].set_title(f"{method}\n{group}, analysis field", fontsize=7)
            else:
                axes[row][column].imshow(panel.examples[group], cmap="gray")
                axes[row][column].set_title(f"{method}\n{group}", fontsize=7)
            axes[row][column].axis("off")
        histogram_axis = axes[len(pictures)][column]
        for group in panel.examples:
            counts, edges = panel.histograms[group]
            histogram_axis.stairs(counts, edges, label=group)
        histogram_axis.set_yticks([])
        histogram_axis.tick_params(labelsize=6)
        histogram_axis.set_xlabel("presentation value (stored units)", fontsize=6)
        if column == 0:
            histogram_axis.set_ylabel("density (sampled body pixels)", fontsize=6)
        histogram_axis.legend(title="scanner group", fontsize=6, title_fontsize=6)
    what = " (whole, then the field the retrained classifier reads)" if first.fields else ""
    figure.suptitle(
        f"harmonization to {reference}\none test image per scanner{what}\nand intensity histograms per scanner",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
