"""Pictures of ML results: confusion matrices, training curves, 2-D feature embeddings (PNG, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """Counts of each (true, predicted) class pair, with each row's share of its true class and a colour bar."""
    figure, axis = plt.subplots(figsize=(3.8 + 0.5 * len(class_names), 3.2 + 0.4 * len(class_names)))
    shown = axis.imshow(matrix, cmap="Blues", vmin=0)
    totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        label = f"{count}\n({100 * count / totals[row, 0]:.0f}%)"
        axis.text(col, row, label, ha="center", va="center", color=colour, fontsize=8)
    axis.set_xticks(range(len(class_names)), class_names)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    figure.colorbar(shown, ax=axis, label="images")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_training_curves(
    history: list[tuple[int, float, float, float]], path: Path, title: str, *, kept_epoch: int, warmup_epochs: int
) -> Path:
    """``history`` rows: (epoch, train loss, validation loss, validation balanced accuracy); the epoch whose weights
    were kept is marked, and the warm-up epochs (never kept) are shaded."""
    epochs, train_loss, validation_loss, accuracy = (list(column) for column in zip(*history, strict=True))
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, train_loss, marker=".", label="training")
    left.plot(epochs, validation_loss, marker=".", label="validation")
    left.set_ylabel("class-weighted cross-entropy loss")
    left.set_title("loss", fontsize=9)
    right.plot(epochs, accuracy, marker=".", color="tab:green", label="validation")
    right.axhline(0.5, color="grey", linewidth=0.8, linestyle=":", label="chance (two classes)")
    right.set_ylim(0, 1.02)
    right.set_ylabel("balanced accuracy")
    right.set_title("validation balanced accuracy", fontsize=9)
    for axis in (left, right):
        if warmup_epochs:
            axis.axvspan(0.5, warmup_epochs + 0.5, color="grey", alpha=0.12, label="warm-up (not kept)")
        axis.axvline(kept_epoch, color="black", linewidth=1, linestyle="--", label=f"kept: epoch {kept_epoch}")
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
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
        axis.set_xlabel("t-SNE dimension 1")
        axis.set_ylabel("t-SNE dimension 2")
        axis.legend(title=name, fontsize=7, title_fontsize=7, markerscale=2)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
