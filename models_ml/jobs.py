"""The model steps as recorded runs over the settings: what ``xrh split | train | features`` and the flows call."""

from __future__ import annotations

from ingest.images import ImageCache, Preprocessing
from models_ml.config import TrainConfig
from models_ml.dataset import cache_images
from models_ml.features import FeatureSummary, analyse_features, cohort_examples, cohort_rows, latest_run
from models_ml.splits import SplitCounts, split_cohort
from models_ml.train import TrainResult, train
from xrh.batches import BatchMapper, local_processes
from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect


def split_images(settings: Settings, cohort: str, *, scheme: str = "standard", seed: int | None = None) -> SplitCounts:
    """Write ml_dataset_splits for a cohort of the experiment_cohorts mart (patient-level, weighted by images)."""
    seed = settings.seed if seed is None else seed
    parameters = {"cohort": cohort, "scheme": scheme, "seed": seed}
    with connect(settings.warehouse) as conn, recorded_run(conn, "split", parameters) as run:
        return split_cohort(conn, cohort, scheme=scheme, seed=seed, run_id=run.run_id)


def cache_cohort_images(
    settings: Settings, cohort: str, image_size: int, *, map_batches: BatchMapper | None = None
) -> None:
    """Preprocess every image of the cohort into the image cache ahead of training and feature extraction (which
    would otherwise do it themselves, in local processes)."""
    with connect(settings.warehouse) as conn:
        examples = cohort_examples(cohort_rows(conn, cohort), settings.mimic_cxr)
    with local_processes(settings.worker_count, map_batches) as mapper:
        cache_images(examples, ImageCache(settings.cache_dir, Preprocessing(size=image_size)), mapper)


def train_classifier(settings: Settings, config: TrainConfig) -> TrainResult:
    """Train a classifier; write ml_runs, ml_training_history, ml_predictions and ml_metrics, and the PNGs."""
    with connect(settings.warehouse) as conn, recorded_run(conn, "train", config.parameters()) as run:
        return train(conn, settings, config, run.run_id)


def extract_features(
    settings: Settings, *, run_id: str = "latest", cohort: str | None = None, permutations: int = 200
) -> tuple[str, FeatureSummary]:
    """Store and analyse the penultimate features of a training run (the latest one of ``cohort`` by default)."""
    with connect(settings.warehouse) as conn:
        training_run = latest_run(conn, cohort) if run_id == "latest" else run_id
        with recorded_run(conn, "features", {"training_run": training_run, "permutations": permutations}):
            return training_run, analyse_features(conn, settings, training_run, permutations=permutations)
