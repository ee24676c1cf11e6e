"""How well the geometry stage's magnification factor estimated from images matches the one the headers give.

Run: .venv/bin/python benchmarks/magnification.py [--bench data/bench/paired] [--dicoms DIR --reference TEXT]

Where a header carries no magnification (no EstimatedRadiographicMagnificationFactor, no source distances), the
acquisition-aware ``geometry`` stage scales the image by its scanner's factor estimated from the mean chest of the
scanner's images against the reference scanner's (``harmonize.scanners.relate_templates``). This script computes that
factor for every scanner, with the headers hidden, and sets it beside the factor the headers give (the ratio of the
reference's mean magnification to the scanner's), with a bootstrap 95% interval over the scanner's images.

``--bench``: the paired bench set, on the images the bench fits the acquisition-aware methods on (each training
phantom on one arm only: unpaired, as on real data). Its HP arm writes no distances; its factor is set beside the
simulator's nominal one (``source_to_image_cm`` over the distance to the nominal mid-plane), which only a simulation
knows. ``--dicoms``: any folder of DICOM files (the demo's, say), grouped by scanner signature, ``--views`` only, the
reference scanner the one whose signature contains ``--reference``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import replace
from functools import reduce
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harmonize import scanners  # noqa: E402
from harmonize.acquisition import acquisition_of  # noqa: E402
from harmonize.common import add_summaries  # noqa: E402
from ingest.images import stored_values  # noqa: E402
from xrh.progress import track  # noqa: E402

BOOTSTRAPS = 100


def summaries_of(paths: list[Path]) -> dict[str, list[dict]]:
    """Per scanner, each image's geometry summary with the header's magnification kept aside."""
    per_scanner: dict[str, list[dict]] = defaultdict(list)
    for path in track(paths, len(paths), "reading chests", unit="images"):
        dataset = pydicom.dcmread(path)
        acquisition = acquisition_of(dataset)
        if acquisition.pixel_spacing_mm is None:
            continue
        hidden = replace(acquisition, magnification=None)
        summary = scanners.summarize_geometry(stored_values(dataset), hidden)
        summary["header_magnification"] = acquisition.magnification
        per_scanner[acquisition.scanner].append(summary)
    return per_scanner


def row_of(summaries: list[dict]) -> dict:
    stage = [{k: v for k, v in s.items() if k != "header_magnification"} for s in summaries]
    return scanners.finish_geometry(reduce(add_summaries, stage))


def header_factor(own: list[dict], reference: list[dict]) -> float | None:
    mine = [s["header_magnification"] for s in own if s["header_magnification"]]
    theirs = [s["header_magnification"] for s in reference if s["header_magnification"]]
    return float(np.mean(theirs) / np.mean(mine)) if mine and theirs else None


def estimates(per_scanner: dict[str, list[dict]], reference: str, seed: int = 0) -> dict[str, tuple]:
    """Per scanner: (template factor, its bootstrap 95% interval, header factor, images)."""
    rng = np.random.default_rng(seed)
    reference_row = row_of(per_scanner[reference])
    out = {}
    for scanner, summaries in per_scanner.items():
        factor = float(scanners.relate_templates(row_of(summaries), reference_row)["template_factor"])
        draws = []
        for _ in range(BOOTSTRAPS):
            own = [summaries[i] for i in rng.integers(0, len(summaries), len(summaries))]
            theirs = [
                per_scanner[reference][i]
                for i in rng.integers(0, len(per_scanner[reference]), len(per_scanner[reference]))
            ]
            draws.append(float(scanners.relate_templates(row_of(own), row_of(theirs))["template_factor"]))
        low, high = np.percentile(draws, [2.5, 97.5])
        out[scanner] = (factor, (low, high), header_factor(summaries, per_scanner[reference]), len(summaries))
    return out


def bench_paths(bench_dir: Path) -> tuple[list[Path], dict[Path, str]]:
    from harmonize.bench import fit_images, read_manifest

    images = read_manifest(bench_dir)
    reference, others = fit_images(images, "physics")
    arm_of = {image.path: image.arm for image in images}
    return reference + others, arm_of


def nominal_factor(arm: str) -> float:
    """The simulator's nominal factor of a bench arm against D110 (what a header would say)."""
    from simulate.bench import arm_profiles
    from simulate.profiles import load_profiles
    from simulate.render import NOMINAL_MID_PLANE_TO_DETECTOR_CM

    profiles = load_profiles()

    def magnification(name: str) -> float:
        distance = arm_profiles(profiles)[name][0].source_to_image_cm
        return distance / (distance - NOMINAL_MID_PLANE_TO_DETECTOR_CM)

    return magnification("D110") / magnification(arm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, help="a bench set (manifest.csv)")
    parser.add_argument("--dicoms", type=Path, help="a folder of DICOM files, searched recursively")
    parser.add_argument("--reference", default="stativ", help="text in the reference scanner's signature (--dicoms)")
    parser.add_argument("--views", default="PA", help="ViewPosition values kept (--dicoms), comma-separated")
    args = parser.parse_args()
    if (args.bench is None) == (args.dicoms is None):
        parser.error("give --bench or --dicoms")
    started = time.perf_counter()
    if args.bench:
        paths, arm_of = bench_paths(args.bench)
    else:
        views = set(args.views.split(","))
        paths = [
            p
            for p in sorted(args.dicoms.rglob("*.dcm"))
            if pydicom.dcmread(p, stop_before_pixels=True).get("ViewPosition") in views
        ]
        arm_of = {}
    per_scanner = summaries_of(paths)
    names = {}
    for path in paths:
        if path in arm_of:
            names.setdefault(acquisition_of(pydicom.dcmread(path, stop_before_pixels=True)).scanner, set()).add(
                arm_of[path]
            )
    if args.bench:
        reference = next(s for s, arms in names.items() if "D110" in arms)
    else:
        reference = next(s for s in per_scanner if args.reference in s)
    print(f"reference scanner: {reference}")
    print(
        f"{'scanner':70s} {'images':>7s} {'from images (95% interval)':>30s} {'from headers':>13s} {'difference':>11s}"
    )
    for scanner, (factor, (low, high), header, count) in sorted(estimates(per_scanner, reference).items()):
        label = f"{scanner} [{', '.join(sorted(names.get(scanner, ())))}]" if names else scanner
        truth, source = header, ""
        if truth is None and args.bench:
            truth, source = nominal_factor(sorted(names[scanner])[0]), " (simulator's nominal)"
        truth_text = "none" if truth is None else f"{truth:.4f}{source}"
        difference = "" if truth is None else f"{factor / truth - 1:+.2%}"
        print(f"{label:70s} {count:7d} {factor:9.4f} ({low:.4f}-{high:.4f})        {truth_text:>13s} {difference:>11s}")
    print(f"{len(paths)} images in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
