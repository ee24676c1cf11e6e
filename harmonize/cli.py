"""``xrh harmonize fit | apply``: fit a method on a reference scanner group, apply it to a cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from xrh.artifacts import artifact_path
from xrh.report import collect, print_table
from xrh.settings import Settings
from xrh.warehouse import connect

REFERENCE_HELP = "reference energy group (default: the reference_group setting, D110)"
COHORT_HELP = "cohort of experiment_cohorts (default: the cohort setting)"
BENCH_SUMMARY = """
select experiment, metric, method, count(*) as seeds, round(avg(value), 4) as mean, round(min(value), 4) as lowest,
    round(max(value), 4) as highest, round(avg(ci_low), 4) as mean_ci_low, round(avg(ci_high), 4) as mean_ci_high,
    max(test_phantoms) as test_phantoms
from harm_bench where run_id = ? and metric not like '%rank'
group by experiment, metric, method order by experiment, metric, method
"""
BENCH_RANKS = """
select seed, replace(metric, '_rank', '') as experiment, cast(value as integer) as rank, method, note
from harm_bench where run_id = ? and metric like '%rank' order by seed, experiment, value
"""


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


def bone_model_command(args: argparse.Namespace, settings: Settings) -> int:
    """Train the bone model that energy matching (the methods energy and physics_energy) reads: a small U-Net,
    trained from scratch on a bench set's paired renderings (each training phantom's noisy D110 image and its bone
    component, from the same phantom rendered without noise, with and without bone), judged on its validation
    phantoms; harm_bone_models. Fits and evaluations of those methods then read the latest one."""
    from harmonize.bench import read_manifest
    from harmonize.jobs import train_bone_model

    read_manifest(Path(args.bench))  # a set that is not there fails before a run is recorded
    run_id = train_bone_model(settings, Path(args.bench))
    with connect(settings.warehouse) as conn:
        row = conn.execute(
            "select training_phantoms, validation_phantoms, explained_share, ci_low, ci_high from harm_bone_models"
            " where run_id = ?",
            (run_id,),
        ).fetchone()
    trained, judged, share, low, high = row
    print(
        f"bone model {run_id}: trained on {trained} training phantoms; explains {share:.3f} ({low:.3f}-{high:.3f}) "
        f"of the bone component of {judged} validation phantoms"
    )
    return 0


def evaluate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Benchmark methods on a scanner cohort: per method (fitted on the training split only) a classifier retrained on
    a centred field of the chest, outline-only and scalar-cue controls, probes, MMD and Frechet distance on held-out
    images, the paired difference against no harmonization and the rank it earns; optionally the Zech et al.
    experiment; harm_evaluation rows and a PNG panel."""
    from harmonize.jobs import evaluate_methods

    run_id = evaluate_methods(
        settings,
        cohort=args.cohort or settings.cohort,
        reference=args.reference or settings.reference_group,
        methods=args.methods,
        epochs=args.epochs,
        size=args.size,
        field_mm=args.field_mm,
        diagnostic_cohort=args.diagnostic_cohort,
        external_group=args.external_group or settings.external_group,
    )
    print(f"evaluation {run_id} written to harm_evaluation; `xrh harmonize leaderboard` ranks it")
    print(f"panel: {settings.cache_dir / 'harmonized' / run_id / 'panel.png'}")
    return 0


def bench_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the powered benchmark on a paired bench set (made by `xrh simulate --bench`): per seed and method the
    retrained scanner classifier, the frozen probe, outline and scalar-cue controls, fidelity to the reference
    rendering, the physical-shift, negative-control and confounded experiments, and the paired ranking; harm_bench."""
    from harmonize.bench import power_lines, read_manifest
    from harmonize.config import BenchConfig
    from harmonize.jobs import bench_methods

    read_manifest(Path(args.bench))  # a set that is not there fails before a run is recorded
    config = BenchConfig(
        methods=tuple(args.methods),
        seeds=tuple(args.seeds),
        size=args.size,
        epochs=args.epochs,
        field_mm=args.field_mm,
        equalize=args.equalize,
    )
    for line in power_lines():
        print(f"power: {line}")
    run_id = bench_methods(settings, Path(args.bench), config)
    with connect(settings.warehouse) as conn:
        summary = conn.execute(BENCH_SUMMARY, (run_id,))
        columns = [d[0] for d in summary.description]
        print_table(f"bench run {run_id}: over seeds, the mean, lowest and highest value", columns, summary.fetchall())
        ranks = conn.execute(BENCH_RANKS, (run_id,))
        columns = [d[0] for d in ranks.description]
        print_table(
            "methods that qualified for a rank, per seed (none listed: none qualified)", columns, ranks.fetchall()
        )
        print(f"figure: {artifact_path(conn, settings.cache_dir, run_id, 'bench_figure')}")
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
    retrained_on = next((row["retrained_on"] for row in rows if row.get("retrained_on")), None)
    if retrained_on:
        print(f"retrained classifier: {retrained_on}")
    return 0


# The terminal's leaderboard: the mart's columns that matter, each value with its interval where it has one.
LEADERBOARD_COLUMNS = (
    ("rank", "rank"),
    ("method", "method"),
    ("retrained_balanced_accuracy", "retrained classifier, balanced accuracy"),
    ("distance_difference", "paired |BA - 0.5| difference"),
    ("outline_only_balanced_accuracy", "outline control"),
    ("scalar_cues_balanced_accuracy", "scalar-cue control"),
    ("probe_balanced_accuracy", "probe"),
    ("mmd_squared", "MMD^2"),
    ("frechet_distance", "Frechet"),
    ("ssim", "SSIM"),
    ("psnr", "PSNR (dB)"),
    ("diagnostic_auc_internal", "AUC reference group"),
    ("diagnostic_auc_external", "AUC external group"),
    ("diagnostic_auc_gap", "AUC gap"),
    ("diagnostic_mean_difference", "mean AUC against none"),
    ("ranking", "ranking"),
)
INTERVALS = {
    "retrained_balanced_accuracy": ("retrained_ci_low", "retrained_ci_high"),
    "distance_difference": ("distance_difference_ci_low", "distance_difference_ci_high"),
    "probe_balanced_accuracy": ("probe_ci_low", "probe_ci_high"),
    "diagnostic_mean_difference": ("diagnostic_mean_difference_ci_low", "diagnostic_mean_difference_ci_high"),
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
    from harmonize.config import ANALYSIS_FIELD_MM, BenchConfig
    from harmonize.methods import DESCRIPTIONS, IMAGE_METHODS
    from harmonize.results import EVALUATION_EPOCHS

    harmonize = subparsers.add_parser(
        "harmonize",
        help="fit and apply harmonization methods",
        description="Image harmonization: fit on a reference group, apply to a cohort.",
    )
    steps = harmonize.add_subparsers(dest="step", metavar="STEP", required=True)
    methods = ", ".join(f"{name} ({description})" for name, description in DESCRIPTIONS.items())
    for name, handler in (("fit", fit_command), ("apply", apply_command)):
        parser = steps.add_parser(name, help=handler.__doc__.split(";")[0], description=handler.__doc__)
        parser.add_argument("--method", choices=list(DESCRIPTIONS), required=True, help=f"one of: {methods}")
        parser.add_argument("--reference", help=REFERENCE_HELP)
        parser.add_argument("--cohort", help=COHORT_HELP)
        parser.set_defaults(handler=handler)
    evaluate = steps.add_parser(
        "evaluate", help="benchmark methods on a scanner cohort", description=evaluate_command.__doc__
    )
    evaluate.add_argument(
        "--methods",
        nargs="+",
        choices=[*DESCRIPTIONS, "combat"],
        default=[*sorted(IMAGE_METHODS), "combat"],
        help="methods to compare with no harmonization (default: the pixel-only ones and combat, which works on deep "
        "features); the acquisition-aware ones (geometry, tone, transfer, detector, physics; energy and "
        "physics_energy after `xrh harmonize bone-model`) on request",
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
        "--size",
        type=int,
        help="image size in pixels of the classifiers the evaluation trains, the retrained scanner classifier and the "
        f"pathology model, at least 32 (default: the trained scanner classifier's; the powered benchmark reads "
        f"{BenchConfig.size})",
    )
    evaluate.add_argument(
        "--field-mm",
        type=float,
        default=ANALYSIS_FIELD_MM,
        help="the retrained classifier and the controls read a centred square of this many mm, equalized; 0 for the "
        "whole frame as the trained classifier reads it (default %(default)s)",
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
    bench = steps.add_parser(
        "bench", help="the powered benchmark on a paired bench set", description=bench_command.__doc__
    )
    bench.add_argument("--bench", required=True, help="the bench set's folder (with manifest.csv)")
    bench.add_argument(
        "--methods",
        nargs="+",
        choices=["none", *DESCRIPTIONS],
        default=list(BenchConfig.methods),
        help="methods, none included for the paired comparison (default: %(default)s)",
    )
    bench.add_argument(
        "--seeds", nargs="+", type=int, default=list(BenchConfig.seeds), help="training seeds (default %(default)s)"
    )
    bench.add_argument(
        "--size", type=int, default=BenchConfig.size, help="analysis image size in pixels (default %(default)s)"
    )
    bench.add_argument(
        "--epochs", type=int, default=BenchConfig.epochs, help="epochs of each classifier (default %(default)s)"
    )
    bench.add_argument(
        "--field-mm",
        type=float,
        default=BenchConfig.field_mm,
        help="analyse a centred square of this many mm; 0 for the whole frame (default %(default)s)",
    )
    bench.add_argument(
        "--equalize",
        action=argparse.BooleanOptionalAction,
        default=BenchConfig.equalize,
        help="histogram-equalize the analysis images (default %(default)s)",
    )
    bench.set_defaults(handler=bench_command)
    bone = steps.add_parser(
        "bone-model", help="train the bone model energy matching reads", description=bone_model_command.__doc__
    )
    bone.add_argument(
        "--bench", required=True, help="a bench set's folder (with manifest.csv), made by `xrh simulate --bench`"
    )
    bone.set_defaults(handler=bone_model_command)
    leaderboard = steps.add_parser(
        "leaderboard", help="build and print the harmonization leaderboard", description=leaderboard_command.__doc__
    )
    leaderboard.set_defaults(handler=leaderboard_command)
