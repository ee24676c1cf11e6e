"""The model steps as recorded runs over the settings: what ``xrh split | train | features`` and the flows call."""

from __future__ import annotations

from ingest.images import Preprocessing, fill_cache
from models_ml.features import FeatureSummary, analyse_features, latest_run
from models_ml.splits import SplitCounts, split_cohort
from models_ml.train import TrainConfig, TrainResult, train
from xrh.batches import BatchMapper
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
) -> int:
    """Preprocess every image of the cohort into the image cache ahead of training and feature extraction (which
    would otherwise do it themselves, in this process); returns how many were newly cached."""
    with connect(settings.warehouse) as conn:
        rows = conn.execute(
            "select e.dicom_id, c.dicom_path from experiment_cohorts as e"
            " join cohort_images as c on c.dicom_id = e.dicom_id where e.cohort_name = ? order by e.dicom_id",
            (cohort,),
        ).fetchall()
    images = [(dicom_id, settings.mimic_cxr / path) for dicom_id, path in rows]
    cached, errors = fill_cache(
        settings.cache_dir,
        Preprocessing(size=image_size),
        images,
        workers=settings.worker_count,
        map_batches=map_batches,
    )
    if errors:
        raise RuntimeError(f"{len(errors)} images of cohort {cohort!r} could not be preprocessed, e.g. {errors[0]}")
    return cached


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
