"""``xrh harmonize fit | apply``: fit a method on a reference scanner group, apply it to a cohort."""

from __future__ import annotations

import argparse

from xrh.report import collect, print_table
from xrh.settings import Settings
from xrh.warehouse import connect

REFERENCE_HELP = "reference energy group (default: the reference_group setting, D110)"
COHORT_HELP = "cohort of experiment_cohorts (default: the cohort setting)"


def fit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Fit a harmonization method on the training-split images of a reference group; store harm_params."""
    from harmonize.jobs import fit_method

    reference = args.reference or settings.reference_group
    run_id, count = fit_method(settings, args.method, args.cohort or settings.cohort, reference)
    print(f"{args.method} fitted on {count} training images of {reference} (run {run_id})")
    return 0


def apply_command(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a fitted method to every image of the cohort; write 16-bit PNGs and harm_images."""
    from harmonize.jobs import apply_method

    run_id, count = apply_method(
        settings, args.method, args.cohort or settings.cohort, args.reference or settings.reference_group
    )
    print(f"{args.method}: {count} harmonized images under {settings.cache_dir / 'harmonized' / run_id}")
    return 0


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Benchmark methods on a scanner cohort: retrained classifier, probe, MMD and Frechet distance per method
    (fitted on the training split only), optionally the Zech et al. experiment; harm_evaluation rows and a PNG panel."""
    from harmonize.jobs import evaluate_methods

    run_id = evaluate_methods(
        settings,
        cohort=args.cohort or settings.cohort,
        reference=args.reference or settings.reference_group,
        methods=args.methods,
        epochs=args.epochs,
        diagnostic_cohort=args.diagnostic_cohort,
        external_group=args.external_group or settings.external_group,
    )
    print(f"evaluation {run_id} written to harm_evaluation; `xrh harmonize leaderboard` ranks it")
    print(f"panel: {settings.cache_dir / 'harmonized' / run_id / 'panel.png'}")
    return 0


def leaderboard_command(args: argparse.Namespace, settings: Settings) -> int:
    """Build the harmonization_leaderboard mart (dbt) from the latest evaluation and print it."""
    from xrh.dbt import run_dbt

    if not run_dbt(settings, ["build", "--select", "harmonization_leaderboard", "--quiet"]):
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        (leaderboard,) = collect(conn, settings.cache_dir, keys=["leaderboard"])
    if not leaderboard.rows:
        print("the leaderboard is empty: run `xrh harmonize evaluate` first")
        return 0
    rows = [dict(zip(leaderboard.columns, row, strict=True)) for row in leaderboard.rows]
    columns = [name for name, _ in LEADERBOARD_COLUMNS if any(_shown(row, name) for row in rows)]
    print_table(
        f"Harmonization leaderboard ({rows[0]['run_id']}; 95% intervals in brackets)",
        [dict(LEADERBOARD_COLUMNS)[name] for name in columns],
        [tuple(_shown(row, name) for name in columns) for row in rows],
    )
    return 0


# The terminal's leaderboard: the mart's columns that matter, each value with its interval where it has one.
LEADERBOARD_COLUMNS = (
    ("rank", "rank"),
    ("method", "method"),
    ("retrained_balanced_accuracy", "retrained classifier, balanced accuracy"),
    ("probe_balanced_accuracy", "probe"),
    ("mmd_squared", "MMD^2"),
    ("frechet_distance", "Frechet"),
    ("ssim", "SSIM"),
    ("psnr", "PSNR (dB)"),
    ("diagnostic_auc_internal", "AUC reference group"),
    ("diagnostic_auc_external", "AUC external group"),
    ("diagnostic_auc_gap", "AUC gap"),
)
INTERVALS = {
    "retrained_balanced_accuracy": ("retrained_ci_low", "retrained_ci_high"),
    "diagnostic_auc_gap": ("diagnostic_gap_ci_low", "diagnostic_gap_ci_high"),
}


def _shown(row: dict[str, object], name: str) -> object:
    """A leaderboard cell: the value (3 decimals), with its interval when the mart has one; None when empty."""
    value = row.get(name)
    if value is None or not isinstance(value, float):
        return value
    low, high = (row.get(bound) for bound in INTERVALS.get(name, ("", "")))
    text = f"{value:.3f}"
    return f"{text} [{low:.3f}, {high:.3f}]" if low is not None and high is not None else text


def register(subparsers: argparse._SubParsersAction) -> None:
    from harmonize.methods import IMAGE_METHODS
    from harmonize.results import EVALUATION_EPOCHS

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
        parser.add_argument("--reference", help=REFERENCE_HELP)
        parser.add_argument("--cohort", help=COHORT_HELP)
        parser.set_defaults(handler=handler)
    evaluate = steps.add_parser(
        "evaluate", help="benchmark methods on a scanner cohort", description=evaluate_command.__doc__
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        choices=[*sorted(IMAGE_METHODS), "combat"],
        default=[*sorted(IMAGE_METHODS), "combat"],
        help="methods to compare with no harmonization (default: all); combat works on deep features",
    )
    evaluate.add_argument("--reference", help=REFERENCE_HELP)
    evaluate.add_argument("--cohort", help=COHORT_HELP)
    evaluate.add_argument(
        "--epochs",
        type=int,
        default=EVALUATION_EPOCHS,
        help="epochs of each retrained classifier (default %(default)s)",
    )
    evaluate.add_argument(
        "--diagnostic-cohort",
        help="a binary pathology cohort (e.g. abnormal_vs_healthy, split with `xrh split`) for the Zech et al. "
        "experiment: trained on the reference group, tested on it and on --external-group",
    )
    evaluate.add_argument(
        "--external-group", help="the group the pathology model never saw (default: the external_group setting)"
    )
    evaluate.set_defaults(handler=evaluate_command)
    leaderboard = steps.add_parser(
        "leaderboard", help="build and print the harmonization leaderboard", description=leaderboard_command.__doc__
    )
    leaderboard.set_defaults(handler=leaderboard_command)
