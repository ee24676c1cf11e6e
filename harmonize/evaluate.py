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

``combat`` works on features, not images: ComBat (``harmonize.combat``, reference-batch mode) is fitted on the
training split's unharmonized features and applied to all, and only the feature metrics are computed for it.

Rows go to ``harm_evaluation`` (replaced per run); a PNG panel shows the same test images before and after each method
and the intensity histograms of each scanner group before and after.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from harmonize import combat  # noqa: E402
from harmonize.diagnostic import diagnostic_design, diagnostic_rows  # noqa: E402
from harmonize.fitting import cohort_images, load_values  # noqa: E402
from harmonize.methods import image_method  # noqa: E402
from harmonize.results import EVALUATION_EPOCHS, TABLES  # noqa: E402
from ingest.images import Preprocessing, analysis_image  # noqa: E402
from models_ml.dataset import ArrayImages  # noqa: E402
from models_ml.feature_statistics import frechet_distance, linear_probe, mmd_rbf  # noqa: E402
from models_ml.features import latest_run, load_run_model  # noqa: E402
from models_ml.metrics import balanced_accuracy, bootstrap, confusion, percentile_interval  # noqa: E402
from models_ml.torch_setup import choose_device  # noqa: E402
from models_ml.train import augmentation, fit_classifier, forward_all  # noqa: E402
from xrh.artifacts import record_artifacts  # noqa: E402
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


def paired_references(settings: Settings, images, reference: str) -> dict[str, Path]:
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


def _fidelity(harmonized: dict[str, np.ndarray], pairs: dict[str, np.ndarray], seed: int) -> list[tuple]:
    """(metric, mean, ci_low, ci_high) of SSIM and PSNR between harmonized images and their paired references."""
    scores: dict[str, list[float]] = {"ssim": [], "psnr": []}
    for dicom_id, target in pairs.items():
        image = harmonized[dicom_id].astype(np.float64)
        span = float(target.max() - target.min()) or 1.0
        scores["ssim"].append(structural_similarity(image, target, data_range=span))
        scores["psnr"].append(peak_signal_noise_ratio(target, image, data_range=span))
    rng = np.random.default_rng(seed)
    out = []
    for metric, values in scores.items():
        values = np.array(values)
        means = bootstrap(lambda index, values=values: values[index].mean(), [np.arange(len(values))], rng)
        out.append((metric, float(values.mean()), *percentile_interval(means)))
    return out


def _analysis_images(values: dict[str, np.ndarray], ids: list[str], size: int) -> np.ndarray:
    preprocessing = Preprocessing(size=size)
    return np.stack([analysis_image(values[i], preprocessing) for i in ids])


def _embed(model: torch.nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    loader = DataLoader(ArrayImages(images, np.zeros(len(images), dtype=int)), batch_size=64)
    with torch.no_grad():
        return torch.cat([model.features(batch.to(device)).cpu() for batch, _ in loader]).numpy()


def _unchanged(values: np.ndarray) -> np.ndarray:
    return values


def _fitted(method: str, reference_images: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    chosen = image_method(method)
    return partial(chosen.apply, params=chosen.fit(reference_images))


def _feature_rows(
    method: str,
    features: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    permutations: int,
    seed: int,
) -> list[dict[str, object]]:
    """Linear probe, MMD and Frechet distance between the two scanner groups in ``features``."""
    probe, spread = linear_probe(features, groups, subjects)
    names = sorted(set(groups))
    first, second = features[groups == names[0]], features[groups == names[1]]
    mmd, p_value = mmd_rbf(first, second, permutations=permutations, seed=seed)
    pair = f"{names[0]} vs {names[1]}"
    return [
        _result(method, "probe_balanced_accuracy", "all", probe, probe - spread, probe + spread),
        _result(method, "mmd_squared", pair, mmd, p_value=p_value),
        _result(method, "frechet_distance", pair, frechet_distance(first, second)),
    ]


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
) -> list[dict[str, object]]:
    """Evaluate ``none`` and each method (image methods, and ``combat`` on features); write and return the
    ``harm_evaluation`` rows. With ``diagnostic_cohort``, also run the Zech et al. experiment from the reference group
    to ``external_group``."""
    device = choose_device(settings.device)
    frozen, trained = load_run_model(conn, settings.cache_dir, latest_run(conn, cohort, target="label"), device)
    config = replace(trained, epochs=epochs, warmup_epochs=min(trained.warmup_epochs, epochs - 1))
    images = cohort_images(conn, settings.mimic_cxr, cohort, seed=config.split_seed, scheme=config.split_scheme)
    design = (
        diagnostic_design(conn, settings.mimic_cxr, diagnostic_cohort, reference, external_group, settings.seed)
        if diagnostic_cohort
        else None
    )
    to_read = {i.dicom_id: i.path for i in [*images, *(design.images() if design else [])]}
    originals = {
        dicom_id: load_values(path) for dicom_id, path in track(to_read.items(), len(to_read), "reading images")
    }
    positions = {
        name: np.array([k for k, i in enumerate(images) if i.split == name]) for name in ("train", "validate", "test")
    }
    everything = [i.dicom_id for i in images]
    labels = {name: np.array([images[k].label for k in index], dtype=int) for name, index in positions.items()}
    groups = np.array([i.energy_group for i in images])
    subjects = np.array([i.subject_id for i in images])
    reference_ids = [i.dicom_id for i in images if i.split == "train" and i.energy_group == reference]
    pairs = {
        dicom_id: load_values(path).astype(np.float64)
        for dicom_id, path in paired_references(settings, images, reference).items()
    }
    folder = settings.cache_dir / "harmonized" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, panels, unharmonized_features = [], {}, None
    for method in ["none", *(m for m in methods if m != "combat")]:
        transform = _unchanged if method == "none" else _fitted(method, [originals[i] for i in reference_ids])
        harmonized = {i: transform(originals[i]) for i in everything}
        panels[method] = panel_column(harmonized, images)
        analysis = _analysis_images(harmonized, everything, config.image_size)  # each image preprocessed once
        arrays = {name: analysis[index] for name, index in positions.items()}
        fitted = fit_classifier(
            config,
            2,
            ArrayImages(arrays["train"], labels["train"], augmentation(config.augment)),
            ArrayImages(arrays["validate"], labels["validate"]),
            labels["train"],
            device,
            folder / f"{method}.pt",
        )
        test_loader = DataLoader(ArrayImages(arrays["test"], labels["test"]), batch_size=64)
        predicted = forward_all(fitted.model, test_loader, device)[0].argmax(dim=1).numpy()
        accuracy = balanced_accuracy(confusion(labels["test"], predicted, 2))
        low, high = _bootstrap_balanced_accuracy(labels["test"], predicted, settings.seed)
        rows.append(_result(method, "retrained_balanced_accuracy", "test", accuracy, low, high))
        features = _embed(frozen, analysis, device)
        if method == "none":
            unharmonized_features = features
        rows += _feature_rows(method, features, groups, subjects, permutations, settings.seed)
        if pairs:
            for metric, value, low, high in _fidelity(harmonized, pairs, settings.seed):
                rows.append(_result(method, metric, f"test images vs {reference} renderings", value, low, high))
        if design:
            for row in diagnostic_rows(
                design,
                lambda image, transform=transform, harmonized=harmonized: (
                    harmonized[image.dicom_id] if image.dicom_id in harmonized else transform(originals[image.dicom_id])
                ),
                config,
                device,
                folder / f"{method}-diagnostic.pt",
                settings.seed,
            ):
                rows.append(_result(method, *row))
    if "combat" in methods:
        training = np.array([i.split == "train" for i in images])
        params = combat.fit(unharmonized_features[training], groups[training], reference=reference)
        adjusted = combat.apply(unharmonized_features, groups, params)
        rows += _feature_rows("combat", adjusted, groups, subjects, permutations, settings.seed)
    write_panel(panels, folder / "panel.png", reference)
    record_artifacts(conn, settings.cache_dir, run_id, {"panel": folder / "panel.png"})
    replace_run_rows(conn, {TABLES["harm_evaluation"]: rows}, run_id)
    return rows


PanelColumn = tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def panel_column(harmonized: dict[str, np.ndarray], images) -> PanelColumn:
    """What the panel shows of one method: the first test image of each scanner group, and each group's intensity
    histogram (above its 5th percentile, which drops the background), so the harmonized images need not be kept."""
    groups = sorted({i.energy_group for i in images})
    examples = {
        g: harmonized[next(i.dicom_id for i in images if i.split == "test" and i.energy_group == g)] for g in groups
    }
    histograms = {}
    for group in groups:
        values = np.concatenate([harmonized[i.dicom_id].ravel() for i in images if i.energy_group == group])
        histograms[group] = np.histogram(values[values > np.percentile(values, 5)], bins=64, density=True)
    return examples, histograms


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
        histogram_axis.legend(fontsize=6)
    figure.suptitle(f"harmonization to {reference}: test images and intensity histograms per scanner", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
