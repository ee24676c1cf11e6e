"""Penultimate-layer features of a trained run, stored in ``ml_features``, and their analysis.

Features are stored as float32 BLOBs in the warehouse (``np.frombuffer(vector, np.float32)``): the vectors then live
with the run's other rows, are replaced atomically with them and are read with plain SQL joins to the marts; at 2 KB
per image (512 dimensions) the whole of MIMIC-CXR takes under 1 GB.

The analysis asks how much of the scanner shows in the features: a linear probe's balanced accuracy (patient-grouped
cross-validation), MMD with a permutation p-value and the Frechet distance between scanner groups, the silhouette of
the scanner labels, Kolmogorov-Smirnov effect sizes of scores and features between scanner groups and, within each
scanner group, between sexes and between the two largest race groups, and a t-SNE picture coloured by scanner and label.
Every image of the cohort is embedded and stored; the analysis and the picture use only the images the run did not
train on (its split's validation, test and unused images): a network separates its own training images better than
any others, which would overstate what its features carry.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.manifold import TSNE
from torch.utils.data import DataLoader, Dataset

from ingest.images import ImageCache, Preprocessing
from models_ml.architectures import build_classifier
from models_ml.config import TrainConfig
from models_ml.dataset import CachedImages, Example, cache_images
from models_ml.feature_statistics import feature_analysis
from models_ml.plots import plot_embedding
from models_ml.results import TABLES
from models_ml.splits import split_members
from models_ml.torch_setup import choose_device, loader_options, mixed_precision, seed_everything
from xrh.artifacts import artifact_path, record_artifacts
from xrh.batches import local_processes
from xrh.runs import latest_succeeded_run
from xrh.settings import Settings
from xrh.tables import replace_run_rows


@dataclass(frozen=True)
class FeatureSummary:
    images: int  # stored
    analysed: int  # the images the run did not train on
    probe_balanced_accuracy: float
    mmd: float
    mmd_p_value: float
    frechet: float
    embedding_png: Path


def latest_run(conn: sqlite3.Connection, cohort: str | None = None, *, target: str | None = None) -> str:
    """The most recently finished training run (of a cohort and a target, if given), found by its parameters."""
    wanted = {key: value for key, value in (("cohort", cohort), ("target", target)) if value is not None}
    run_id = latest_succeeded_run(conn, "train", wanted)
    if run_id is None:
        which = (f" for cohort {cohort!r}" if cohort else "") + (f" with target {target!r}" if target else "")
        raise ValueError(f"no finished training run{which}; run `xrh train`")
    return run_id


def load_run_model(
    conn: sqlite3.Connection, cache_dir: Path, run_id: str, device: torch.device
) -> tuple[torch.nn.Module, TrainConfig]:
    """A run's trained classifier, in evaluation mode on ``device``, and the run's configuration.

    The checkpoint is the run's ``checkpoint`` artifact, found under ``cache_dir`` (the settings' cache folder, wherever
    the data root now lies and whatever the working folder) and checked against the SHA-256 recorded when it was
    trained (:class:`xrh.artifacts.ArtifactError` otherwise).
    """
    run = conn.execute(
        "select architecture, hyperparameters, class_names from ml_runs where run_id = ?", (run_id,)
    ).fetchone()
    checkpoint = artifact_path(conn, cache_dir, run_id, "checkpoint") if run else None
    if checkpoint is None:
        raise ValueError(f"no training run {run_id!r} with a checkpoint in ml_runs and artifacts; run `xrh train`")
    architecture, hyperparameters, class_names = run
    model = build_classifier(architecture, len(json.loads(class_names)))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.to(device).eval(), TrainConfig.from_stored(json.loads(hyperparameters))


def cohort_rows(conn: sqlite3.Connection, cohort: str) -> list[tuple]:
    """Every image of a cohort (all splits): dicom_id, subject_id, label name, dicom_path, energy_group, sex, race."""
    return conn.execute(
        "select dicom_id, subject_id, coalesce(label_name, label), dicom_path, energy_group, sex, race"
        " from cohort_members where cohort_name = ? order by dicom_id",
        (cohort,),
    ).fetchall()


def training_images(conn: sqlite3.Connection, run_id: str) -> set[str]:
    """The dicom_ids a training run was fitted on: its split's training images, by the split scheme, seed and target
    it was trained with."""
    stored = conn.execute("select hyperparameters from ml_runs where run_id = ?", (run_id,)).fetchone()
    if stored is None:
        raise ValueError(f"no training run {run_id!r} in ml_runs; run `xrh train`")
    config = TrainConfig.from_stored(json.loads(stored[0]))
    members = split_members(
        conn, config.cohort, scheme=config.split_scheme, seed=config.split_seed, target=config.target
    )
    return {m["dicom_id"] for m in members if m["split"] == "train"}


def cohort_examples(rows: list[tuple], mimic_cxr: Path) -> list[Example]:
    """Examples of :func:`cohort_rows` for embedding: the class index is not needed, so it is 0."""
    return [Example(row[0], mimic_cxr / row[3], 0, "all") for row in rows]


def embed(
    model: torch.nn.Module, dataset: Dataset, device: torch.device, *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features as float32, score of the last class) of every image of ``dataset``, batch by batch."""
    features, scores = [], []
    with torch.no_grad(), mixed_precision(device):
        for images, _ in DataLoader(dataset, batch_size=batch_size, **loader_options(device)):
            embedding = model.features(images.to(device, non_blocking=True))
            features.append(embedding.float().cpu())
            scores.append(torch.softmax(model.head(embedding).float(), dim=1)[:, -1].cpu())
    return torch.cat(features).numpy().astype(np.float32), torch.cat(scores).numpy()


def extract_features(conn: sqlite3.Connection, settings: Settings, run_id: str):
    """Embed every image of the run's cohort; return (rows of cohort_images columns, features, scores)."""
    device = choose_device(settings.device)
    model, config = load_run_model(conn, settings.cache_dir, run_id, device)
    seed_everything(config.seed)
    rows = cohort_rows(conn, config.cohort)
    examples = cohort_examples(rows, settings.mimic_cxr)
    cache = ImageCache(settings.cache_dir, Preprocessing(size=config.image_size))
    with local_processes(settings.worker_count) as map_batches:
        cache_images(examples, cache, map_batches)
    return (rows, *embed(model, CachedImages(examples, cache), device))


def analyse_features(
    conn: sqlite3.Connection, settings: Settings, run_id: str, *, permutations: int = 200, max_points: int = 2000
) -> FeatureSummary:
    """Extract, store and analyse the features of a run; write ml_features and ml_feature_analysis.

    The statistics are those of :func:`models_ml.feature_statistics.feature_analysis`, each linear in the number of
    images (MMD and the silhouette on bounded subsamples, the probe on a bounded subsample of whole patients); the
    summary's MMD and Frechet distance are those of the last pair of scanner groups.
    """
    rows, features, scores = extract_features(conn, settings, run_id)
    trained_on = training_images(conn, run_id)
    held_out = np.array([r[0] not in trained_on for r in rows])
    if not held_out.any():
        raise ValueError(f"run {run_id!r} trained on every image of its cohort: no held-out images to analyse")
    stored = [
        {"dicom_id": r[0], "dimensions": features.shape[1], "vector": features[i].tobytes()} for i, r in enumerate(rows)
    ]
    kept = np.flatnonzero(held_out)
    rows, features, scores = [rows[i] for i in kept], features[kept], scores[kept]
    scanner = np.array([r[4] for r in rows])
    subjects = np.array([r[1] for r in rows])
    labels = np.array([str(r[2]) for r in rows])
    demographics = {column: np.array([str(r[index]) for r in rows]) for column, index in (("sex", 5), ("race", 6))}
    analysis = feature_analysis(
        features, scores, scanner, subjects, demographics, permutations=permutations, seed=settings.seed
    )

    def last(metric: str, field: str = "value") -> float:
        found = [r[field] for r in analysis if r["grouping"] == "energy_group" and r["metric"] == metric]
        return found[-1] if found else float("nan")

    chosen = np.random.default_rng(settings.seed).permutation(len(features))[:max_points]
    perplexity = float(max(2, min(30, (len(chosen) - 1) // 3)))
    points = TSNE(n_components=2, init="pca", random_state=settings.seed, perplexity=perplexity).fit_transform(
        features[chosen]
    )
    folder = settings.cache_dir / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    colourings = {"scanner (energy group)": list(scanner[chosen]), "cohort label": list(labels[chosen])}
    png = plot_embedding(
        points, colourings, folder / "feature_embedding.png", f"t-SNE of penultimate features, {run_id}"
    )
    analysis.append(
        {"analysis": "held_out", "grouping": "all", "group_a": None, "group_b": None, "metric": "analysed_images",
         "value": float(len(rows)), "p_value": None}
    )  # fmt: skip
    record_artifacts(conn, settings.cache_dir, run_id, {"feature_embedding": png})
    replace_run_rows(conn, {TABLES["ml_features"]: stored, TABLES["ml_feature_analysis"]: analysis}, run_id)
    return FeatureSummary(
        len(stored),
        len(rows),
        last("balanced_accuracy"),
        last("mmd_squared"),
        last("mmd_squared", "p_value"),
        last("frechet_distance"),
        png,
    )
