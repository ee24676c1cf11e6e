"""Flows over the model steps: ``train`` (split, then train the scanner classifier) and ``features``.

Training and feature extraction are cached on their inputs and the code: the run id (a hash of the parameters and
the code version), the warehouse's identity and the rows they read. An unchanged input is not recomputed; a rebuilt
warehouse or changed splits are.
"""

from __future__ import annotations

import hashlib
import json

from prefect import flow, task

from flows.common import image_task_runner, jobs_of_this_flow_run, mapper_of, process_batch, settings
from models_ml.config import TrainConfig
from models_ml.features import latest_run
from models_ml.jobs import cache_cohort_images, extract_features, split_images, train_classifier
from xrh.artifacts import recorded_artifact
from xrh.runs import run_id_for
from xrh.warehouse import connect, warehouse_id


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def training_cache_key(_context, parameters: dict) -> str:
    config: TrainConfig = parameters["config"]
    with connect(settings().warehouse) as conn:
        splits = conn.execute(
            "select dicom_id, split, label from ml_dataset_splits"
            " where cohort_name = ? and scheme = ? and seed = ? order by dicom_id",
            (config.cohort, config.split_scheme, config.split_seed),
        ).fetchall()
        return _digest(run_id_for("train", config.parameters()), warehouse_id(conn), splits)


def features_cache_key(_context, parameters: dict) -> str:
    with connect(settings().warehouse) as conn:
        training_run = latest_run(conn, parameters["cohort"])
        checkpoint = recorded_artifact(conn, training_run, "checkpoint")
        run_id = run_id_for("features", {"training_run": training_run, "permutations": parameters["permutations"]})
        return _digest(run_id, warehouse_id(conn), checkpoint)


@task(name="split cohort")
def split_task(cohort: str, scheme: str) -> dict[str, int]:
    counts = split_images(settings(), cohort, scheme=scheme)
    return {f"label {label} {split}": images for (label, split), images in sorted(counts.images.items())}


@task(name="train classifier", cache_key_fn=training_cache_key, persist_result=True)
def train_task(config: TrainConfig) -> dict[str, object]:
    result = train_classifier(settings(), config)
    return {"run_id": result.run_id, "metrics": result.metrics, "folder": str(result.folder)}


@task(name="extract and analyse features", cache_key_fn=features_cache_key, persist_result=True)
def features_task(cohort: str, permutations: int) -> dict[str, object]:
    training_run, summary = extract_features(settings(), cohort=cohort, permutations=permutations)
    return {
        "training_run": training_run,
        "probe_balanced_accuracy": summary.probe_balanced_accuracy,
        "mmd": summary.mmd,
        "frechet": summary.frechet,
    }


@flow(name="train", log_prints=True, task_runner=image_task_runner())
def train_flow(
    cohort: str | None = None,
    architecture: str | None = None,
    image_size: int | None = None,
    epochs: int | None = None,
    patience: int | None = None,
    split_scheme: str | None = None,
) -> dict[str, object]:
    """Split the cohort (patient-level), preprocess its images on the Dask task runner, and train a classifier on it
    from scratch. Parameters left out take the cohort setting and TrainConfig's defaults."""
    configured = settings()
    chosen = {
        "architecture": architecture,
        "image_size": image_size,
        "epochs": epochs,
        "patience": patience,
        "split_scheme": split_scheme,
    }
    config = TrainConfig(
        cohort=cohort or configured.cohort,
        split_seed=configured.seed,
        seed=configured.seed,
        **{name: value for name, value in chosen.items() if value is not None},
    )
    with jobs_of_this_flow_run():
        print(split_task(config.cohort, config.split_scheme))
        cache_cohort_images(configured, config.cohort, config.image_size, map_batches=mapper_of(process_batch))
        result = train_task(config)
    for split, figures in result["metrics"].items():
        print(f"{split:9} balanced accuracy {figures['balanced_accuracy']:.3f}  AUC {figures['auc']:.3f}")
    return result


@flow(name="features", log_prints=True)
def features_flow(cohort: str | None = None, permutations: int = 200) -> dict[str, object]:
    """Penultimate features of the cohort's (default: the cohort setting's) latest training run, stored and analysed
    by scanner group."""
    with jobs_of_this_flow_run():
        summary = features_task(cohort or settings().cohort, permutations)
    print(summary)
    return summary
