"""The whole image path on simulated cohorts of N and 4N images at 2,048 pixels: time per image, peak memory, and the
ratio 4N/N per stage, with an extrapolation to the real scanner cohort and to all of MIMIC-CXR.

Run: .venv/bin/python benchmarks/scale_images.py [--patients 80] [--image-size 2048] [--work data/bench/scale_images]

Two data roots are simulated (``--patients`` and four times as many, about 4.8 images each, 2,048 pixels on the longer
side), ingested, built and split. Then each stage runs as the ``xrh`` command a user would type, in its own process:

- ``cache``: ``xrh ingest cache`` (each ingested image decoded once to its 128-pixel analysis image), per image;
- ``train``: ``xrh train`` (small CNN, 128 px, 2 epochs), per image of the scanner cohort;
- ``features``: ``xrh features`` (embed and analyse), per image of the cohort;
- ``fit``: ``xrh harmonize fit`` of cdf, fda and bands, per reference training image and method;
- ``apply``: ``xrh harmonize apply`` of the same, per cohort image and method;
- ``evaluate``: ``xrh harmonize evaluate --methods cdf fda bands`` with the Zech et al. experiment on
  ``abnormal_vs_healthy`` (2 epochs per classifier), per image and method (cohort and diagnostic images; the
  unharmonized analysis images are the cache stage's).

Peak memory is sampled every 0.1 s over the command's process tree (the command and its worker processes): the largest
sum over the tree, and the largest any one process reached. The image steps run in ``workers`` processes (the default:
one per CPU), started on demand: a small run whose work fits one batch starts fewer workers than a large one, which
shows in the tree's sum but not in the largest process. Time per image includes each command's fixed start-up (Python,
torch, the model), spread over four times as many images at 4N: a ratio under 1 is that, not a faster method.

The extrapolation assumes image steps scale with cores (they are independent images over processes: measured
1.6-1.7x from 1 to 2 workers in benchmarks/scale.py) and with pixels (every step is linear in pixels or
n log n), to 16 cores and MIMIC-CXR's mean matrix of 2,500 x 3,000 pixels; training is left out of the full-set
figure (it runs on the GPU, whose speed this machine cannot measure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
XRH = str(ROOT / ".venv/bin/xrh")
COHORT = "scanner_d110_vs_s120"
DIAGNOSTIC = "abnormal_vs_healthy"
METHODS = ("cdf", "fda", "bands")
REAL_PIXELS = 2500 * 3000  # MIMIC-CXR's typical matrix
# The original study's scanner cohort: 5,031 D110 and 1,655 S120 patients less 651 in both, at an assumed 1.6 PA images
# per patient (the count of images is not published).
REAL_SCANNER_COHORT = 10_000
REAL_IMAGES = 377_110
TARGET_CORES = 16


@dataclass
class Measured:
    seconds: float
    peak_bytes: int  # the process tree's summed resident memory at its largest
    largest_process_bytes: int  # the largest resident memory any one process of the tree reached


def measure(command: list[str], environment: dict[str, str]) -> Measured:
    """Run ``command``; its wall time and the peak summed RSS of its process tree. Its output is discarded unless it
    fails."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    per_process: dict[int, int] = {}
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            resident = {p.pid: p.memory_info().rss for p in [watched, *watched.children(recursive=True)]}
            peak = max(peak, sum(resident.values()))
            per_process = {pid: max(rss, per_process.get(pid, 0)) for pid, rss in resident.items()} | {
                pid: rss for pid, rss in per_process.items() if pid not in resident
            }
        except psutil.Error:
            pass
        time.sleep(0.1)
    reader.join()
    if process.returncode:
        sys.exit(f"{' '.join(command[1:])} failed ({process.returncode}):\n{''.join(output[-40:])}")
    return Measured(time.perf_counter() - start, peak, max(per_process.values(), default=0))


def prepare(root: Path, patients: int, image_size: int | str, seed: int) -> dict[str, str]:
    """Simulate, ingest, build and split a data root once (each step skipped when it is done)."""
    environment = {**os.environ, "XRH_DATA_ROOT": str(root)}
    steps = [
        ["ingest", "all"],
        ["build"],
        ["split", "--cohort", COHORT],
        ["split", "--cohort", DIAGNOSTIC],
    ]
    if not (root / "physionet.org").is_dir():
        steps.insert(0, ["simulate", "--patients", str(patients), "--image-size", str(image_size), "--seed", str(seed)])
    if not (root / "prepared").exists():
        for command in steps:
            print(f"  {root.name}: xrh {' '.join(command)}", flush=True)
            measure([XRH, *command], environment)
        (root / "prepared").write_text("ok")
    return environment


def counts(root: Path) -> dict[str, float]:
    with sqlite3.connect(root / "warehouse.sqlite") as conn:
        ingested, pixels = conn.execute('select count(*), avg("Rows" * "Columns") from raw_dicom_headers').fetchone()
        cohort = conn.execute("select count(*) from cohort_members where cohort_name = ?", (COHORT,)).fetchone()[0]
        reference = conn.execute(
            "select count(*) from ml_dataset_splits join cohort_images using (dicom_id) where cohort_name = ? and"
            " split = 'train' and energy_group = 'D110' and scheme = 'standard' and seed = 0",
            (COHORT,),
        ).fetchone()[0]
        diagnostic = conn.execute(
            "select count(*) from cohort_members where cohort_name = ? and energy_group in ('D110', 'S120')",
            (DIAGNOSTIC,),
        ).fetchone()[0]
    return {"ingested": ingested, "pixels": pixels, "cohort": cohort, "reference": reference, "diagnostic": diagnostic}


def stages(root: Path, environment: dict[str, str], n: dict[str, float]) -> dict[str, tuple[Measured, float]]:
    """Each stage's measurement and the images it handled, from an empty cache (every image decoded again)."""
    shutil.rmtree(root / "cache", ignore_errors=True)
    train = [
        "train",
        "--cohort",
        COHORT,
        "--architecture",
        "small_cnn",
        "--image-size",
        "128",
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--patience",
        "2",
    ]
    out = {
        "cache": (measure([XRH, "ingest", "cache", "--size", "128"], environment), n["ingested"]),
        "train": (measure([XRH, *train], environment), n["cohort"]),
        "features": (measure([XRH, "features", "--cohort", COHORT], environment), n["cohort"]),
    }
    fits, applies = [], []
    for method in METHODS:
        fits.append(measure([XRH, "harmonize", "fit", "--method", method, "--cohort", COHORT], environment))
        applies.append(measure([XRH, "harmonize", "apply", "--method", method, "--cohort", COHORT], environment))
    out["fit"] = (combined(fits), n["reference"] * len(METHODS))
    out["apply"] = (combined(applies), n["cohort"] * len(METHODS))
    evaluate = [
        "harmonize",
        "evaluate",
        "--cohort",
        COHORT,
        "--methods",
        *METHODS,
        "--epochs",
        "2",
        "--diagnostic-cohort",
        DIAGNOSTIC,
    ]
    # Every cohort and diagnostic image (an upper bound: some diagnostic images are in neither test set) harmonized by
    # each method; the unharmonized analysis images are those the cache stage made.
    out["evaluate"] = (measure([XRH, *evaluate], environment), (n["cohort"] + n["diagnostic"]) * len(METHODS))
    return out


def combined(measurements: list[Measured]) -> Measured:
    return Measured(
        sum(m.seconds for m in measurements),
        max(m.peak_bytes for m in measurements),
        max(m.largest_process_bytes for m in measurements),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=80, help="patients of the smaller data set (default 80)")
    parser.add_argument("--image-size", type=int, default=2048, help="longer image side (default 2048)")
    parser.add_argument("--work", type=Path, default=ROOT / "data/bench/scale_images")
    args = parser.parse_args()

    results = {}
    for factor in (1, 4):
        root = args.work / f"p{args.patients * factor}-s{args.image_size}"
        print(f"{root.name}: preparing", flush=True)
        environment = prepare(root, args.patients * factor, args.image_size, seed=factor)
        n = counts(root)
        print(
            f"{root.name}: {n['ingested']} images ingested ({n['pixels'] / 1e6:.1f} MP each), {n['cohort']} in the"
            f" scanner cohort, {n['diagnostic']} D110/S120 images in the diagnostic cohort",
            flush=True,
        )
        results[factor] = (n, stages(root, environment, n))

    (small, first), (large, fourfold) = results[1], results[4]
    cores = os.cpu_count() or 1
    print(
        f"\nimage path at {args.image_size} px, {cores} cores; N = {small['cohort']} and 4N = {large['cohort']} cohort"
        " images (ratios 4N/N; targets: memory within 15%, time per image within 20%)"
    )
    print(
        f"{'stage':9} {'s/image N':>10} {'s/image 4N':>11} {'ratio':>6} {'tree MiB N':>11} {'tree MiB 4N':>12}"
        f" {'ratio':>6} {'largest N':>10} {'largest 4N':>11} {'ratio':>6}"
    )
    per_image = {}
    for stage, (measured_n, images_n) in first.items():
        measured_4n, images_4n = fourfold[stage]
        per_n, per_4n = measured_n.seconds / images_n, measured_4n.seconds / images_4n
        per_image[stage] = per_4n
        largest_n, largest_4n = measured_n.largest_process_bytes, measured_4n.largest_process_bytes
        print(
            f"{stage:9} {per_n:10.3f} {per_4n:11.3f} {per_4n / per_n:6.2f} {measured_n.peak_bytes / 2**20:11.0f}"
            f" {measured_4n.peak_bytes / 2**20:12.0f} {measured_4n.peak_bytes / measured_n.peak_bytes:6.2f}"
            f" {largest_n / 2**20:10.0f} {largest_4n / 2**20:11.0f} {largest_4n / largest_n:6.2f}"
        )

    scale = (REAL_PIXELS / large["pixels"]) * (cores / TARGET_CORES)
    print(
        f"\nextrapolated to {TARGET_CORES} cores and {REAL_PIXELS / 1e6:.1f} MP images (x{scale:.3f} per image: pixels"
        f" x{REAL_PIXELS / large['pixels']:.2f}, cores x{cores / TARGET_CORES:.3f}); hours"
    )
    # Images each stage handles, per image of the data set: fit reads the reference share, apply and evaluate every
    # image once per method.
    reference_share = large["reference"] / large["cohort"]
    uses = {
        "cache": 1,
        "train": 1,
        "features": 1,
        "fit": reference_share * len(METHODS),
        "apply": len(METHODS),
        "evaluate": len(METHODS),
    }
    total = {REAL_SCANNER_COHORT: 0.0, REAL_IMAGES: 0.0}
    for stage, seconds in per_image.items():
        hours = {size: seconds * scale * uses[stage] * size / 3600 for size in total}
        print(
            f"{stage:9} scanner cohort ({REAL_SCANNER_COHORT:,}) {hours[REAL_SCANNER_COHORT]:7.2f}"
            f"   all images ({REAL_IMAGES:,}) {hours[REAL_IMAGES]:8.1f}"
        )
        if stage != "train":
            total = {size: total[size] + hours[size] for size in total}
    print(
        f"{'total':9} excluding training: scanner cohort {total[REAL_SCANNER_COHORT]:.2f} h, all images"
        f" {total[REAL_IMAGES]:.1f} h (target under 24 h)"
    )


if __name__ == "__main__":
    main()
