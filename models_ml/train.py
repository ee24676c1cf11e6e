"""Train a classifier on an experiment cohort and write ml_runs, ml_training_history, ml_predictions and ml_metrics.

Training is from scratch (no hub weights can be fetched; a local weights file can be given), with class-balanced loss,
augmentation that keeps acquisition texture unless asked otherwise, early stopping on the validation loss, fixed
seeds and automatic device choice. The best checkpoint is saved under ``<cache_dir>/runs/<run_id>/`` with its SHA-256
recorded, beside a confusion-matrix and a training-curve picture.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ingest.images import ImageCache, Preprocessing
from models_ml.architectures import build_classifier
from models_ml.config import AUGMENTATIONS, TrainConfig
from models_ml.dataset import CachedImages, CohortData, cache_images, class_weights, load_cohort
from models_ml.metrics import auc, balanced_accuracy, confusion, expected_calibration_error, precision_recall
from models_ml.plots import plot_confusion, plot_training_curves
from models_ml.results import TABLES
from models_ml.torch_setup import (
    choose_device,
    import_torchvision,
    loader_options,
    mixed_precision,
    seed_everything,
)
from xrh.artifacts import record_artifacts
from xrh.batches import local_processes
from xrh.files import sha256_file
from xrh.progress import track
from xrh.settings import Settings
from xrh.tables import replace_run_rows


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, dict[str, float]]
    folder: Path
    class_names: list[str]


def augmentation(kind: str):
    """``geometric``: small rotations, shifts and zoom, which leave noise and sharpness alone; ``strong`` adds blur and
    contrast jitter, which erase acquisition texture (use it to study exactly that)."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {kind!r}")
    if kind == "none":
        return None
    import_torchvision()
    from torchvision.transforms import v2

    steps = [v2.RandomAffine(degrees=5, translate=(0.03, 0.03), scale=(0.95, 1.05))]
    if kind == "strong":
        steps += [v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.5), v2.ColorJitter(0.2, 0.2)]
    return v2.Compose(steps)


def forward_all(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of every batch of ``loader``, in evaluation mode, on the CPU (float32)."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad(), mixed_precision(device):
        for images, batch_labels in loader:
            logits.append(model(images.to(device, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(batch_labels))
    return torch.cat(logits), torch.cat(labels)


def split_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], split: str, run_id: str):
    """``ml_metrics`` rows for one split, and the headline figures."""
    classes = len(class_names)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion(labels, predicted, classes)
    precision, recall = precision_recall(matrix)
    headline = {
        "balanced_accuracy": balanced_accuracy(matrix),
        "auc": auc(labels, probabilities),
        "expected_calibration_error": expected_calibration_error(labels, probabilities),
    }

    def row(metric: str, value: float, true_class: str | None = None, predicted_class: str | None = None) -> dict:
        return {"run_id": run_id, "split": split, "metric": metric, "true_class": true_class,
                "predicted_class": predicted_class, "value": float(value)}  # fmt: skip

    rows = [row(name, value) for name, value in headline.items()]
    rows += [row("precision", precision[c], predicted_class=class_names[c]) for c in range(classes)]
    rows += [row("recall", recall[c], true_class=class_names[c]) for c in range(classes)]
    rows += [
        row("confusion", matrix[t, p], class_names[t], class_names[p]) for t in range(classes) for p in range(classes)
    ]
    return rows, headline, matrix


@dataclass
class FittedClassifier:
    model: nn.Module
    history: list[tuple[int, float, float, float]]  # epoch, train loss, validation loss, validation balanced accuracy
    best_epoch: int
    seconds: float
    images_seen: int


def fit_classifier(
    config: TrainConfig,
    classes: int,
    train_set: Dataset,
    validation_set: Dataset,
    train_labels: np.ndarray,
    device: torch.device,
    checkpoint: Path,
) -> FittedClassifier:
    """The training loop: class-balanced loss, AdamW, early stopping on the validation loss after the warm-up; the
    best state is saved to ``checkpoint`` and loaded back into the returned model."""
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loading = loader_options(device, every_epoch=True)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=generator, **loading)
    # Its own generator: iterating a DataLoader draws a seed, and evaluation must not move the training's random stream.
    validation_loader = DataLoader(validation_set, batch_size=config.batch_size, generator=torch.Generator(), **loading)
    model = build_classifier(config.architecture, classes, Path(config.weights) if config.weights else None).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_labels, classes).to(device))
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")  # float16 gradients need loss scaling
    history, best_loss, best_epoch, stale = [], float("inf"), 0, 0
    images_seen, start = 0, time.perf_counter()
    for epoch in track(range(1, config.epochs + 1), config.epochs, f"training {config.architecture}", unit="epochs"):
        model.train()
        total = 0.0
        for images, labels in train_loader:
            optimizer.zero_grad()
            with mixed_precision(device):
                loss = loss_fn(model(images.to(device, non_blocking=True)), labels.to(device, non_blocking=True))
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.item() * len(labels)
            images_seen += len(labels)
        logits, labels = forward_all(model, validation_loader, device)  # one pass gives the loss and the accuracy
        # Batch losses weighted by batch size, as the loss is reported for the training batches.
        validation_loss = sum(
            float(loss_fn(chunk.to(device), truth.to(device))) * len(truth)
            for chunk, truth in zip(logits.split(config.batch_size), labels.split(config.batch_size), strict=True)
        ) / max(len(labels), 1)
        validation_accuracy = balanced_accuracy(confusion(labels.numpy(), logits.argmax(dim=1).numpy(), classes))
        history.append((epoch, total / len(train_set), validation_loss, validation_accuracy))
        # During the warm-up the batch-norm running statistics still lag the batch statistics, so the validation loss
        # is not yet a fair judge: those epochs are neither kept as best nor counted towards the patience.
        if epoch <= config.warmup_epochs and epoch < config.epochs:
            continue
        if validation_loss < best_loss:
            best_loss, best_epoch, stale = validation_loss, epoch, 0
            torch.save(model.state_dict(), checkpoint)
        else:
            stale += 1
            if stale >= config.patience:
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
    return FittedClassifier(model, history, best_epoch, seconds, images_seen)


def train(conn: sqlite3.Connection, settings: Settings, config: TrainConfig, run_id: str) -> TrainResult:
    """Train, evaluate on every split and write the run's rows (replacing any earlier rows of the same run)."""
    device = choose_device(settings.device)
    data: CohortData = load_cohort(
        conn,
        settings.mimic_cxr,
        config.cohort,
        target=config.target,
        scheme=config.split_scheme,
        seed=config.split_seed,
    )
    classes = len(data.class_names)
    cache = ImageCache(settings.cache_dir, Preprocessing(size=config.image_size))
    with local_processes(settings.worker_count) as map_batches:
        cache_images(data.examples, cache, map_batches)
    splits = {name: data.split(name) for name in ("train", "validate", "test")}
    if not splits["train"] or not splits["validate"]:
        raise ValueError(
            f"cohort {config.cohort!r} needs training and validation images; got "
            f"{ {k: len(v) for k, v in splits.items()} }"
        )
    folder = settings.cache_dir / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "model.pt"
    fitted = fit_classifier(
        config,
        classes,
        CachedImages(splits["train"], cache, augmentation(config.augment)),
        CachedImages(splits["validate"], cache),
        np.array([e.label for e in splits["train"]]),
        device,
        checkpoint,
    )
    model = fitted.model
    history = [
        dict(zip(("epoch", "train_loss", "validation_loss", "validation_balanced_accuracy"), row, strict=True))
        for row in fitted.history
    ]
    eval_loaders = {
        name: DataLoader(CachedImages(examples, cache), batch_size=config.batch_size, **loader_options(device))
        for name, examples in splits.items()
    }
    prediction_rows, metric_rows, headlines = [], [], {}
    for name, examples in splits.items():
        if not examples:
            continue
        probabilities = torch.softmax(forward_all(model, eval_loaders[name], device)[0], dim=1).numpy()
        labels = np.array([e.label for e in examples])
        rows, headlines[name], matrix = split_metrics(labels, probabilities, data.class_names, name, run_id)
        metric_rows += rows
        score_column = 1 if classes == 2 else None
        for example, probs in zip(examples, probabilities, strict=True):
            score = float(probs[score_column]) if score_column is not None else float(probs.max())
            prediction_rows.append(
                {
                    "dicom_id": example.dicom_id,
                    "split": name,
                    "label": example.label,
                    "predicted_class": int(probs.argmax()),
                    "score": score,
                    "probabilities": json.dumps([round(float(p), 6) for p in probs]),
                }
            )
        if name == "test":
            plot_confusion(
                matrix,
                data.class_names,
                folder / "confusion_matrix.png",
                f"{config.cohort} ({config.target}), test split",
            )
    plot_training_curves(
        fitted.history,
        folder / "training_curves.png",
        f"{config.architecture} on {config.cohort} ({config.target}), {config.image_size} px",
        kept_epoch=fitted.best_epoch,
        warmup_epochs=min(config.warmup_epochs, len(fitted.history)),
    )
    run_row = {
        "cohort_name": config.cohort,
        "target": config.target,
        "split_scheme": config.split_scheme,
        "split_seed": config.split_seed,
        "architecture": config.architecture,
        "hyperparameters": json.dumps(config.parameters(), sort_keys=True),
        "class_names": json.dumps(data.class_names),
        "data_hash": data.data_hash(),
        "checkpoint_path": str(checkpoint.relative_to(settings.cache_dir)),
        "checkpoint_sha256": sha256_file(checkpoint),
        "device": str(device),
        "epochs_run": len(history),
        "best_epoch": fitted.best_epoch,
        "train_seconds": fitted.seconds,
        "train_images_per_second": fitted.images_seen / max(fitted.seconds, 1e-9),
    }
    pictures = {"confusion_matrix": folder / "confusion_matrix.png", "training_curves": folder / "training_curves.png"}
    files = {"checkpoint": checkpoint, **{kind: path for kind, path in pictures.items() if path.exists()}}
    record_artifacts(conn, settings.cache_dir, run_id, files)
    replace_run_rows(
        conn,
        {
            TABLES["ml_runs"]: [run_row],
            TABLES["ml_training_history"]: history,
            TABLES["ml_predictions"]: prediction_rows,
            TABLES["ml_metrics"]: metric_rows,
        },
        run_id,
    )
    return TrainResult(run_id, headlines, folder, data.class_names)
