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


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Benchmark methods on a scanner cohort: retrained classifier, probe, MMD and Frechet distance per method
    (fitted on the training split only); harm_evaluation rows and a PNG panel."""
    from harmonize.evaluate import evaluate

    parameters = {"cohort": args.cohort, "reference": args.reference, "methods": args.methods, "epochs": args.epochs}
    with connect(settings.warehouse) as conn, recorded_run(conn, "harmonize_evaluate", parameters) as run:
        rows = evaluate(
            conn,
            settings,
            cohort=args.cohort,
            reference=args.reference,
            methods=args.methods,
            run_id=run.run_id,
            epochs=args.epochs,
        )
    print(f"{'method':16} {'retrained bal. acc. (95% CI)':30} {'probe':>6} {'MMD^2':>8} {'Frechet':>9}")
    by_method: dict[str, dict[str, tuple]] = {}
    for _, method, metric, _, value, low, high, _ in rows:
        by_method.setdefault(method, {})[metric] = (value, low, high)
    for method, metrics in by_method.items():
        accuracy, low, high = metrics["retrained_balanced_accuracy"]
        print(
            f"{method:16} {accuracy:.3f} ({low:.3f}-{high:.3f}){'':12} {metrics['probe_balanced_accuracy'][0]:6.3f} "
            f"{metrics['mmd_squared'][0]:8.4f} {metrics['frechet_distance'][0]:9.2f}"
        )
    print(f"panel: {settings.cache_dir / 'harmonized' / run.run_id / 'panel.png'}")
    return 0


def leaderboard_command(args: argparse.Namespace, settings: Settings) -> int:
    """Build the harmonization_leaderboard mart (dbt) from the latest evaluation and print it."""
    from xrh.dbt import run_dbt

    if not run_dbt(settings, ["build", "--select", "harmonization_leaderboard", "--quiet"]):
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        rows = conn.execute(
            "select rank, method, retrained_balanced_accuracy, retrained_ci_low, retrained_ci_high,"
            " probe_balanced_accuracy, mmd_squared, frechet_distance from harmonization_leaderboard order by rank"
        ).fetchall()
    if not rows:
        print("the leaderboard is empty: run `xrh harmonize evaluate` first")
        return 0
    print(f"{'rank':>4} {'method':16} {'retrained acc. (95% CI)':24} {'probe':>6} {'MMD^2':>8} {'Frechet':>9}")
    for rank, method, accuracy, low, high, probe, mmd, frechet in rows:
        print(f"{rank:4} {method:16} {accuracy:.3f} ({low:.3f}-{high:.3f})      {probe:6.3f} {mmd:8.4f} {frechet:9.2f}")
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
    evaluate = steps.add_parser(
        "evaluate", help="benchmark methods on a scanner cohort", description=evaluate_command.__doc__
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(IMAGE_METHODS),
        default=sorted(IMAGE_METHODS),
        help="methods to compare with no harmonization (default: all)",
    )
    evaluate.add_argument("--reference", default="D110", help="reference energy group (default D110)")
    evaluate.add_argument("--cohort", default="scanner_d110_vs_s120", help="cohort of experiment_cohorts")
    evaluate.add_argument("--epochs", type=int, default=40, help="epochs of each retrained classifier (default 40)")
    evaluate.set_defaults(handler=evaluate_command)
    leaderboard = steps.add_parser(
        "leaderboard", help="build and print the harmonization leaderboard", description=leaderboard_command.__doc__
    )
    leaderboard.set_defaults(handler=leaderboard_command)
