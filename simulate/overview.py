"""A contact sheet of simulated images, one per scanner profile and projection, read back from the DICOM files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from simulate.layout import MIMIC_CXR, cxr_study_folder
from simulate.profiles import load_profiles


def display_pixels(dataset: pydicom.Dataset) -> np.ndarray:
    """Pixels scaled to 0-1 with bright meaning dense (MONOCHROME1 inverted), for display only."""
    pixels = dataset.pixel_array.astype(np.float32)
    pixels = pixels / float((1 << int(dataset.BitsStored)) - 1)
    return 1.0 - pixels if dataset.PhotometricInterpretation == "MONOCHROME1" else pixels


def write_overview(out: Path, png: Path) -> Path:
    """Tile the first image of each (profile, projection) of a simulated release into ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = pd.read_csv(out / "simulation_truth.csv.gz")
    examples = truth.groupby(["profile", "projection"], sort=True).head(1)
    columns = min(5, len(examples))
    rows = -(-len(examples) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 3.5 * rows + 1.0), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, row in zip(axes.flat, examples.itertuples(), strict=False):
        path = (
            out
            / "physionet.org/files"
            / MIMIC_CXR
            / cxr_study_folder(row.subject_id, row.study_id)
            / f"{row.dicom_id}.dcm"
        )
        axis.imshow(display_pixels(pydicom.dcmread(path)), cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"{row.profile}, {row.projection}\n{row.kvp:g} kVp, {row.mas:.1f} mAs", fontsize=8)
    profiles = load_profiles()
    key = "\n".join(f"{name}: {profiles[name].description}" for name in sorted(set(examples["profile"])))
    figure.suptitle("Simulated radiographs: the first image of each scanner profile and projection", fontsize=10)
    figure.supxlabel(key, fontsize=7, x=0.01, ha="left", multialignment="left")
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return png
