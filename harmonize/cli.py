"""``xrh harmonize fit | apply``: fit a method on a reference scanner group, apply it to a cohort."""

from __future__ import annotations

import argparse

from xrh.runs import recorded_run, run_id_for
from xrh.settings import Settings
from xrh.warehouse import connect


def _fit_parameters(args: argparse.Namespace) -> dict[str, object]:
    return {"method": args.method, "cohort": args.cohort, "reference": args.reference}


def fit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Fit a harmonization method on the training-split images of a reference group; store harm_params."""
    from harmonize.jobs import fit

    with connect(settings.warehouse) as conn, recorded_run(conn, "harmonize_fit", _fit_parameters(args)) as run:
        count = fit(conn, settings.mimic_cxr, args.method, args.cohort, args.reference, run.run_id)
    print(f"{args.method} fitted on {count} training images of {args.reference} (run {run.run_id})")
    return 0


def apply_command(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a fitted method to every image of the cohort; write 16-bit PNGs and harm_images."""
    from harmonize.jobs import apply

    fit_run_id = run_id_for("harmonize_fit", _fit_parameters(args))
    with connect(settings.warehouse) as conn, recorded_run(conn, "harmonize_apply", {"fit_run": fit_run_id}) as run:
        count = apply(conn, settings.mimic_cxr, settings.cache_dir, fit_run_id, run.run_id)
    print(f"{args.method}: {count} harmonized images under {settings.cache_dir / 'harmonized' / run.run_id}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from harmonize.methods import IMAGE_METHODS

    harmonize = subparsers.add_parser(
        "harmonize",
        help="fit and apply harmonization methods",
        description="Image harmonization: fit on a reference group, apply to a cohort.",
    )
    steps = harmonize.add_subparsers(dest="step", metavar="STEP", required=True)
    methods = ", ".join(f"{name} ({method.description})" for name, method in IMAGE_METHODS.items())
    for name, handler in (("fit", fit_command), ("apply", apply_command)):
        parser = steps.add_parser(name, help=handler.__doc__.split(";")[0], description=handler.__doc__)
        parser.add_argument("--method", choices=sorted(IMAGE_METHODS), required=True, help=f"one of: {methods}")
        parser.add_argument("--reference", default="D110", help="reference energy group (default D110)")
        parser.add_argument("--cohort", default="scanner_d110_vs_s120", help="cohort of experiment_cohorts")
        parser.set_defaults(handler=handler)
