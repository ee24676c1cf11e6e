"""Pictures of ML results: confusion matrices, training curves, 2-D feature embeddings (PNG, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    figure, axis = plt.subplots(figsize=(3.2 + 0.4 * len(class_names), 3.0 + 0.4 * len(class_names)))
    axis.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        axis.text(
            col, row, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black"
        )
    axis.set_xticks(range(len(class_names)), class_names)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_training_curves(history: list[tuple[int, float, float, float]], path: Path, title: str) -> Path:
    """``history`` rows: (epoch, train loss, validation loss, validation balanced accuracy)."""
    epochs, train_loss, validation_loss, accuracy = (list(column) for column in zip(*history, strict=True))
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot(epochs, train_loss, label="train")
    left.plot(epochs, validation_loss, label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, accuracy, color="tab:green")
    right.set_ylim(0, 1.02)
    right.set_xlabel("epoch")
    right.set_ylabel("validation balanced accuracy")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_embedding(points: np.ndarray, colourings: dict[str, list[str]], path: Path, title: str) -> Path:
    """One scatter panel per colouring (e.g. scanner, label) of the same 2-D points."""
    figure, axes = plt.subplots(1, len(colourings), figsize=(4.2 * len(colourings), 4), squeeze=False)
    for axis, (name, values) in zip(axes[0], colourings.items(), strict=True):
        for value in sorted(set(values)):
            chosen = np.array([v == value for v in values])
            axis.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.7, label=value)
        axis.set_title(f"coloured by {name}", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(fontsize=7, markerscale=2)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
