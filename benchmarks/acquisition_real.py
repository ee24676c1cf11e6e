"""The acquisition-aware chain (``physics``) on the real chest radiograph that ships offline: pydicom-data's RG1.

Run: .venv/bin/python benchmarks/acquisition_real.py [--bench data/bench/paired] [--references 250]

RG1 is a Philips CR PA chest (MONOCHROME1, 15 bits stored). Its scanner has this one image, so its maps are fitted
from that image alone (``min_images`` 1). That shows the chain running on a real header and real pixel values; it is
not a fit anyone should use. The reference scanner is the stand-in's D110, fitted on the bench set's D110 training
images. RG1's header has PixelSpacing 0\\0 and no source-to-patient distance, so the geometry and transfer stages fall
back, and the printed reason says so: only the two tone stages apply. The script prints the fallback and the body
intensity quantiles before and after, and writes ``data/bench/realism/acquisition_real.png`` (RG1 before and after, a
D110 reference image, their body-intensity distributions).
"""

from __future__ import annotations

import argparse
import csv
import sys
import textwrap
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harmonize import scanners  # noqa: E402
from harmonize.acquisition import acquisition_of  # noqa: E402
from harmonize.common import body_values, weighted_quantiles  # noqa: E402
from ingest.images import stored_values  # noqa: E402

OUT = Path("data/bench/realism")
QUANTILES = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("data/bench/paired"), help="the bench set (D110 arm)")
    parser.add_argument("--references", type=int, default=250, help="D110 training images to fit the reference on")
    return parser.parse_args()


def read(path: Path):
    dataset = pydicom.dcmread(path)
    return stored_values(dataset), acquisition_of(dataset)


def body_quantiles(image: np.ndarray) -> np.ndarray:
    return weighted_quantiles(*body_values(image), QUANTILES)


def main() -> None:
    args = arguments()
    with (args.bench / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "train" and r["arm"] == "D110"]
    reference_paths = [args.bench / r["path"] for r in rows[: args.references]]
    real_path = Path(get_testdata_file("RG1_UNCR.dcm"))

    def images():
        yield (*read(real_path), False)
        for path in reference_paths:
            yield (*read(path), True)

    params = scanners.fit("physics", images, min_images=1)
    real, acquisition = read(real_path)
    harmonized = scanners.apply(real, acquisition, params)
    reference = read(reference_paths[0])[0]
    print(f"RG1: {acquisition.scanner}")
    print(f"fallback: {scanners.fallback_reason(params, acquisition)}")
    print(f"reference scanner: {params['reference_scanner']} ({len(reference_paths)} images)")
    print("body-intensity quantiles " + ", ".join(f"{q:.2f}" for q in QUANTILES) + " (stored values):")
    for name, image in (("RG1 before", real), ("RG1 after", harmonized), ("D110 reference", reference)):
        print(f"  {name:15} " + ", ".join(f"{v:7.0f}" for v in body_quantiles(image)))
    figure(real, harmonized, reference, scanners.fallback_reason(params, acquisition))


def figure(real: np.ndarray, harmonized: np.ndarray, reference: np.ndarray, fallback: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
    panels = (
        ("RG1 (Philips CR), as stored", real),
        ("RG1 after the physics chain", harmonized),
        ("Stand-in D110 reference", reference),
    )
    for axis, (title, image) in zip(axes, panels, strict=False):
        low, high = np.percentile(image, [0.5, 99.5])
        shown = axis.imshow(image, cmap="gray", vmin=low, vmax=high)
        axis.set_title(title)
        axis.set_xlabel("column (pixels)")
        axis.set_ylabel("row (pixels)")
        fig.colorbar(shown, ax=axis, fraction=0.046, label="presentation value")
    for label, image in (("RG1 before", real), ("RG1 after", harmonized), ("D110 reference", reference)):
        values, counts = body_values(image)
        cdf = np.cumsum(counts) / counts.sum()
        axes[3].plot(values, cdf, label=label)
    axes[3].set_title("Body-intensity distributions")
    axes[3].set_xlabel("presentation value (stored units)")
    axes[3].set_ylabel("cumulative share of body pixels")
    axes[3].legend(loc="lower right")
    title = f"Acquisition-aware harmonization on a real radiograph; {fallback or 'every stage applied'}"
    fig.suptitle("\n".join(textwrap.wrap(title, 170)), fontsize=9)
    fig.tight_layout()
    path = OUT / "acquisition_real.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
