"""The harmonization evaluation at native resolution (the simulated units' full matrices, up to 3,050 x 2,539): its time
and peak memory on this machine.

Run: .venv/bin/python benchmarks/evaluate_native.py [--patients 80] [--work data/bench/scale_images]

A data root of ``--patients`` patients is simulated at native resolution, ingested, built and split (once), a small CNN
is trained for 2 epochs, then ``xrh harmonize evaluate --methods cdf fda bands`` runs with the Zech et al. experiment
from an empty cache, as in ``benchmarks/scale_images.py`` (whose helpers it uses), which shows memory does not grow with
the number of images: the figure here is what an evaluation of 2,000 native images would need too.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from scale_images import COHORT, DIAGNOSTIC, METHODS, ROOT, XRH, counts, measure, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=80, help="patients (default 80)")
    parser.add_argument("--work", type=Path, default=ROOT / "data/bench/scale_images")
    args = parser.parse_args()
    root = args.work / f"p{args.patients}-native"
    environment = prepare(root, args.patients, "native", seed=1)
    n = counts(root)
    shutil.rmtree(root / "cache", ignore_errors=True)
    train = ["train", "--cohort", COHORT, "--architecture", "small_cnn", "--image-size", "128", "--epochs", "2",
             "--warmup-epochs", "1", "--patience", "2"]  # fmt: skip
    measure([XRH, *train], environment)
    evaluate = ["harmonize", "evaluate", "--cohort", COHORT, "--methods", *METHODS, "--epochs", "2",
                "--diagnostic-cohort", DIAGNOSTIC]  # fmt: skip
    measured = measure([XRH, *evaluate], environment)
    images = (n["cohort"] + n["diagnostic"]) * (len(METHODS) + 1)  # the unharmonized images too: nothing is cached
    tree, largest = measured.peak_bytes / 2**30, measured.largest_process_bytes / 2**30
    print(
        f"evaluation at native resolution ({n['pixels'] / 1e6:.1f} MP per image on average), {n['cohort']} cohort and"
        f" {n['diagnostic']} D110/S120 diagnostic images, four variants: {measured.seconds:.0f} s"
        f" ({measured.seconds / images:.3f} s per image and variant); peak resident memory"
        f" {tree:.2f} GiB over the process tree, {largest:.2f} GiB in the largest process"
        " (target for 2,000 native images: under 4 GiB)"
    )
    print(
        f"2,000 native images at this rate: about {2000 * 4 * measured.seconds / images / 3600:.1f} h on this machine"
    )


if __name__ == "__main__":
    main()
