"""``xrh split``: patient-level dataset splits of an experiment cohort."""

from __future__ import annotations

import argparse
from dataclasses import fields

from xrh.settings import Settings


def split_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write ml_dataset_splits for a cohort of the experiment_cohorts mart (patient-level, weighted by images)."""
    from models_ml.jobs import split_images

    seed = settings.seed if args.seed is None else args.seed
    cohort = args.cohort or settings.cohort
    counts = split_images(settings, cohort, scheme=args.scheme, seed=seed)
    print(f"{cohort} ({args.scheme}, seed {seed}): images per label and split")
    for (label, split), images in sorted(counts.images.items()):
        print(f"  label {label}  {split:9} {images:6,}")
    print(f"patients in more than one split: {counts.subjects_in_two_splits}")
    return 0


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    """Train a classifier on a cohort (scanner type by default; any cohort_images column with --target) and write
    ml_runs, ml_training_history, ml_predictions and ml_metrics, with PNGs under the cache's runs folder."""
    from models_ml.config import TrainConfig
    from models_ml.jobs import train_classifier

    config = TrainConfig(
        cohort=args.cohort or settings.cohort,
        target=args.target,
        architecture=args.architecture,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        warmup_epochs=args.warmup_epochs,
        augment=args.augment,
        split_scheme=args.scheme,
        split_seed=args.split_seed,
        seed=settings.seed if args.seed is None else args.seed,
        weights=args.weights,
    )
    result = train_classifier(settings, config)
    print(f"run {result.run_id}: classes {result.class_names}")
    for split, figures in result.metrics.items():
        print(
            f"  {split:9} balanced accuracy {figures['balanced_accuracy']:.3f}  AUC {figures['auc']:.3f}  "
            f"ECE {figures['expected_calibration_error']:.3f}"
        )
    print(f"pictures and checkpoint: {result.folder}")
    return 0


def features_command(args: argparse.Namespace, settings: Settings) -> int:
    """Store the penultimate features of a training run (ml_features) and analyse them by scanner group
    (ml_feature_analysis: linear probe, MMD, Frechet distance, silhouette, KS effect sizes) with a t-SNE picture."""
    from models_ml.jobs import extract_features

    run_id, summary = extract_features(settings, run_id=args.run, cohort=args.cohort, permutations=args.permutations)
    print(f"features of run {run_id}: {summary.images} images stored, {summary.analysed} it did not train on analysed")
    print(
        f"  linear probe balanced accuracy (scanner group, patient-grouped 5-fold over those images): "
        f"{summary.probe_balanced_accuracy:.3f}"
    )
    print(
        f"  MMD^2 {summary.mmd:.4f} (permutation p = {summary.mmd_p_value:.3f}), Frechet distance {summary.frechet:.2f}"
    )
    print(f"  embedding picture: {summary.embedding_png}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from models_ml.config import ARCHITECTURES, AUGMENTATIONS, TrainConfig

    default = {field.name: field.default for field in fields(TrainConfig)}  # the one place training defaults live
    cohort_help = "cohort of the experiment_cohorts mart (default: the cohort setting)"

    train = subparsers.add_parser(
        "train", help="train a scanner or diagnostic classifier", description=train_command.__doc__
    )
    train.add_argument("--cohort", help=cohort_help)
    train.add_argument(
        "--target",
        default=default["target"],
        help="'label' (the cohort's label, default) or any cohort_images column, e.g. energy_group",
    )
    train.add_argument(
        "--architecture", choices=ARCHITECTURES, default=default["architecture"], help="network (default %(default)s)"
    )
    train.add_argument("--image-size", type=int, default=default["image_size"], help="input side (default %(default)s)")
    train.add_argument(
        "--epochs", type=int, default=default["epochs"], help="most epochs (default %(default)s; early stopping)"
    )
    train.add_argument("--batch-size", type=int, default=default["batch_size"], help="batch size (default %(default)s)")
    train.add_argument(
        "--learning-rate",
        type=float,
        default=default["learning_rate"],
        help="AdamW learning rate (default %(default)s)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=default["patience"],
        help="epochs without a better validation loss before stopping (default %(default)s)",
    )
    train.add_argument(
        "--warmup-epochs",
        type=int,
        default=default["warmup_epochs"],
        help="epochs before early stopping may start or a checkpoint be kept (default %(default)s)",
    )
    train.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        default=default["augment"],
        help="geometric (default; keeps noise and sharpness), strong (adds blur and contrast), none",
    )
    train.add_argument(
        "--scheme",
        choices=("standard", "balanced"),
        default=default["split_scheme"],
        help="split scheme (default standard; `xrh split --scheme`)",
    )
    train.add_argument(
        "--split-seed", type=int, default=default["split_seed"], help="seed of the split (xrh split --seed)"
    )
    train.add_argument("--seed", type=int, default=None, help="training seed (default: the seed setting)")
    train.add_argument("--weights", help="a local state-dict file to start from (nothing is downloaded)")
    train.set_defaults(handler=train_command)

    features = subparsers.add_parser(
        "features", help="store and analyse deep features of a run", description=features_command.__doc__
    )
    features.add_argument("--run", default="latest", help="training run id, or 'latest' (default)")
    features.add_argument("--cohort", help="with --run latest: the latest run of this cohort")
    features.add_argument("--permutations", type=int, default=200, help="permutations of the MMD test (default 200)")
    features.set_defaults(handler=features_command)

    parser = subparsers.add_parser("split", help="patient-level splits of a cohort", description=split_command.__doc__)
    parser.add_argument("--cohort", help=cohort_help)
    parser.add_argument(
        "--scheme",
        choices=("standard", "balanced"),
        default="standard",
        help="60/20/20 by images (standard, the default) or equal training images per label (balanced)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the seed setting)")
    parser.set_defaults(handler=split_command)
