"""``xrh split``: patient-level dataset splits of an experiment cohort."""

from __future__ import annotations

import argparse

from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect


def split_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write ml_dataset_splits for a cohort of the experiment_cohorts mart (patient-level, weighted by images)."""
    from models_ml.splits import split_cohort

    seed = settings.seed if args.seed is None else args.seed
    parameters = {"cohort": args.cohort, "scheme": args.scheme, "seed": seed}
    with connect(settings.warehouse) as conn, recorded_run(conn, "split", parameters) as run:
        counts = split_cohort(conn, args.cohort, scheme=args.scheme, seed=seed, run_id=run.run_id)
    print(f"{args.cohort} ({args.scheme}, seed {seed}): images per label and split")
    for (label, split), images in sorted(counts.images.items()):
        print(f"  label {label}  {split:9} {images:6,}")
    print(f"patients in more than one split: {counts.subjects_in_two_splits}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("split", help="patient-level splits of a cohort", description=split_command.__doc__)
    parser.add_argument("--cohort", default="scanner_d110_vs_s120", help="cohort name (dbt var cohorts)")
    parser.add_argument(
        "--scheme",
        choices=("standard", "balanced"),
        default="standard",
        help="60/20/20 by images (standard) or equal training images per label (balanced)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the seed setting)")
    parser.set_defaults(handler=split_command)
