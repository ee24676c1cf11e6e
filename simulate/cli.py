"""``xrh simulate``: write the physics-based MIMIC stand-in."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect


def _image_size(value: str) -> int | None:
    return None if value == "native" else int(value)


def bench_command(args: argparse.Namespace, out: Path) -> int:
    """The paired bench set instead of a release (simulate/bench.py)."""
    from simulate.bench import bench_phantoms, render_bench

    size = args.image_size or 512
    manifest = render_bench(
        out, bench_phantoms(args.bench, args.seed), size, seed=args.seed, workers=args.workers or os.cpu_count() or 1
    )
    print(f"bench set of {args.bench} phantoms at {size} px: {manifest}")
    print(f"next: xrh harmonize bench --bench {out}")
    return 0


def simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write a simulated MIMIC-IV / MIMIC-CXR / MIMIC-CXR-JPG release in PhysioNet's layout."""
    from simulate.generate import simulate_dataset
    from simulate.overview import write_overview

    out = Path(args.out) if args.out else settings.data_root
    if args.bench:
        return bench_command(args, out)
    parameters = {
        "patients": args.patients,
        "seed": args.seed,
        "image_size": args.image_size,
        "paired": args.paired,
        "out": str(out.resolve()),
    }
    with connect(settings.warehouse) as conn, recorded_run(conn, "simulate", parameters):
        summary = simulate_dataset(
            out,
            patients=args.patients,
            seed=args.seed,
            image_size=args.image_size,
            paired=args.paired,
            workers=args.workers,
        )
    overview = write_overview(out, out / "simulation_overview.png")
    print(f"wrote {summary.patients} patients, {summary.studies} studies, {summary.images} images under {summary.root}")
    for profile, count in summary.images_by_profile.items():
        print(f"  {profile:5} {count:6} images")
    if summary.paired_images:
        print(f"  paired counterparts: {summary.paired_images} images under {out / 'simulation_paired'}")
    print(f"ground truth: {out / 'simulation_truth.csv.gz'}")
    print(f"overview:     {overview}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write the simulated MIMIC stand-in",
        description=simulate_command.__doc__
        + " Images are rendered from physics: spekpy spectra, xraylib attenuation, "
        "a randomized thorax phantom, direct or scintillator detectors, and each vendor's processing.",
    )
    parser.add_argument(
        "--patients", type=int, default=100, help="number of subjects, about 4.8 images each (default 100)"
    )
    parser.add_argument("--out", help="folder to write physionet.org/ into (default: the data root setting)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files")
    parser.add_argument(
        "--image-size",
        type=_image_size,
        default=320,
        help="longer image side in pixels, or 'native' for the units' full matrices (default 320)",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="also render every image as each other scanner would have (simulation_paired/)",
    )
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: one per CPU)")
    parser.add_argument(
        "--bench",
        type=int,
        metavar="PHANTOMS",
        help="instead of a release, render the paired bench set of this many phantoms (2,000 for the powered "
        "benchmark: 800 test phantoms on every arm) for `xrh harmonize bench`",
    )
    parser.set_defaults(handler=simulate_command)
