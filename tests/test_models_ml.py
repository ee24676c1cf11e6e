"""Scanner and diagnostic classifiers, deep features and their statistics, on tiny simulated images (real torch)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from models_ml.architectures import build_classifier
from models_ml.config import TrainConfig
from models_ml.feature_statistics import frechet_distance, ks_effect, mmd_rbf
from models_ml.features import analyse_features, latest_run, training_images
from models_ml.metrics import balanced_accuracy, confusion, expected_calibration_error
from models_ml.splits import split_cohort
from models_ml.torch_setup import import_torchvision
from models_ml.train import train
from xrh.runs import recorded_run
from xrh.warehouse import connect

ML_TABLES = ("ml_runs", "ml_training_history", "ml_predictions", "ml_metrics")


def tiny(cohort: str, **overrides) -> TrainConfig:
    options = {
        "architecture": "small_cnn",
        "image_size": 32,
        "epochs": 2,
        "batch_size": 8,
        "warmup_epochs": 0,
        "patience": 2,
    }
    return TrainConfig(cohort=cohort, **{**options, **overrides})


@pytest.fixture(scope="module")
def trained(built):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="test-split")
        config = tiny("scanner_d110_vs_s120")
        with recorded_run(conn, "train", config.parameters()) as run:
            result = train(conn, built, config, run.run_id)
    return built, result


def test_training_writes_every_ml_table_with_one_run_id(trained):
    settings, result = trained
    with connect(settings.warehouse, readonly=True) as conn:
        for table in ML_TABLES:
            assert conn.execute(f"select count(*) from {table} where run_id = ?", (result.run_id,)).fetchone()[0], table
        # Each prediction is filed under the split the image was given (a dataset that mixed up splits fails here).
        misfiled = conn.execute(
            "select count(*) from ml_predictions as p join ml_dataset_splits as s on s.dicom_id = p.dicom_id"
            " and s.cohort_name = 'scanner_d110_vs_s120' and s.scheme = 'standard' and s.seed = 0"
            " where p.run_id = ? and p.split != s.split",
            (result.run_id,),
        ).fetchone()[0]
        assert misfiled == 0
        predictions = conn.execute("select count(*) from ml_predictions where run_id = ?", (result.run_id,)).fetchone()[
            0
        ]
        cohort = conn.execute(
            "select count(*) from ml_dataset_splits where cohort_name = 'scanner_d110_vs_s120' and split != 'unused'"
            " and scheme = 'standard' and seed = 0"
        ).fetchone()[0]
        assert predictions == cohort
        metrics = {r[0] for r in conn.execute("select distinct metric from ml_metrics")}
        assert {"balanced_accuracy", "auc", "expected_calibration_error", "precision", "recall", "confusion"} <= metrics
        history = conn.execute("select epochs_run from ml_runs where run_id = ?", (result.run_id,)).fetchone()[0]
        files = dict(conn.execute("select kind, path from artifacts where run_id = ?", (result.run_id,)).fetchall())
        assert history == 2 and set(files) == {"checkpoint", "confusion_matrix", "training_curves"}
        assert all(not Path(path).is_absolute() for path in files.values())  # found through the reader's settings
        checkpoint = files["checkpoint"]
        probabilities = json.loads(
            conn.execute(
                "select probabilities from ml_predictions where run_id = ? limit 1", (result.run_id,)
            ).fetchone()[0]
        )
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert (result.folder / "confusion_matrix.png").stat().st_size > 0
    assert (result.folder / "training_curves.png").stat().st_size > 0
    assert torch.load(settings.cache_dir / checkpoint, weights_only=True)


def test_the_same_run_again_gives_the_same_rows(trained):
    """Training is deterministic on one machine: the same run again replaces its rows with identical ones."""
    settings, result = trained
    query = "select dicom_id, probabilities from ml_predictions where run_id = ? order by dicom_id"
    with connect(settings.warehouse) as conn:
        before = conn.execute(query, (result.run_id,)).fetchall()
        total = conn.execute("select count(*) from ml_predictions").fetchone()[0]
        config = tiny("scanner_d110_vs_s120")
        with recorded_run(conn, "train", config.parameters()) as run:
            assert run.run_id == result.run_id
            train(conn, settings, config, run.run_id)
        assert conn.execute("select count(*) from ml_predictions").fetchone()[0] == total  # replaced, not added
        assert conn.execute(query, (result.run_id,)).fetchall() == before


def test_features_are_stored_and_analysed(trained):
    settings, result = trained
    with connect(settings.warehouse) as conn:
        assert latest_run(conn, "scanner_d110_vs_s120") == result.run_id
        summary = analyse_features(conn, settings, result.run_id, permutations=20)
        dimensions, vector = conn.execute("select dimensions, vector from ml_features limit 1").fetchone()
        analyses = {r[0] for r in conn.execute("select distinct analysis from ml_feature_analysis")}
        stored = conn.execute("select count(*) from ml_features where run_id = ?", (result.run_id,)).fetchone()[0]
        (analysed,) = conn.execute(
            "select value from ml_feature_analysis where run_id = ? and metric = 'analysed_images'", (result.run_id,)
        ).fetchone()
        trained_on = training_images(conn, result.run_id)
    assert summary.images > summary.analysed > 0 and len(np.frombuffer(vector, np.float32)) == dimensions == 128
    # Every image is stored; only those the run did not train on are analysed.
    assert stored == summary.images and analysed == summary.analysed == stored - len(trained_on)
    assert {"mmd_rbf", "frechet", "ks_scores", "ks_features"} <= analyses
    assert summary.embedding_png.stat().st_size > 0


def test_a_diagnostic_model_and_a_column_target_train_with_the_same_code(built):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "pneumonia_vs_healthy", run_id="test-split")
        for config in (tiny("pneumonia_vs_healthy"), tiny("pneumonia_vs_healthy", target="sex")):
            with recorded_run(conn, "train", config.parameters()) as run:
                result = train(conn, built, config, run.run_id)
            # The cohort's label_names (dbt_project.yml), or a column's own values.
            expected = ["healthy", "pneumonia or consolidation"] if config.target == "label" else ["F", "M"]
            assert result.class_names == expected


def test_local_weights_file_is_loaded_and_a_wrong_one_refused(tmp_path):
    model = build_classifier("small_cnn", 2)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    loaded = build_classifier("small_cnn", 2, path)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="does not fit small_cnn"):
        build_classifier("small_cnn", 2, path)


@pytest.mark.parametrize("architecture", ["resnet18", "densenet121"])
def test_torchvision_architectures_take_one_channel(architecture):
    import_torchvision()
    model = build_classifier(architecture, 3)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
    assert model.features(torch.zeros(1, 1, 64, 64)).shape == (1, model.embedding_size)


def test_metric_functions():
    labels = np.array([0, 0, 0, 1])
    matrix = confusion(labels, np.array([0, 0, 1, 1]), 2)
    assert matrix.tolist() == [[2, 1], [0, 1]]
    assert balanced_accuracy(matrix) == pytest.approx((2 / 3 + 1) / 2)
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 0, 1]), perfect) == 0.0


def test_feature_statistics_separate_shifted_groups_only():
    rng = np.random.default_rng(0)
    same_a, same_b = rng.normal(size=(40, 4)), rng.normal(size=(40, 4))
    shifted = rng.normal(loc=2.0, size=(40, 4))
    p_same = mmd_rbf(same_a, same_b, permutations=50).p_value
    p_shift = mmd_rbf(same_a, shifted, permutations=50).p_value
    assert p_same > 0.05 and p_shift < 0.05
    assert frechet_distance(same_a, same_a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(same_a, shifted) > 10
    assert ks_effect(same_a[:, 0], shifted[:, 0])[0] > 0.5


def test_stored_configurations_load_by_field_name():
    stored = {**tiny("c").parameters(), "retired_option": 3}
    del stored["augment"]  # a field added after the run was made
    config = TrainConfig.from_stored(stored)
    assert config.cohort == "c" and config.augment == TrainConfig(cohort="c").augment


def test_features_and_evaluation_run_from_another_folder_against_a_moved_data_root(trained, tmp_path, monkeypatch):
    """Everything a job stored (DICOM paths, the checkpoint, harmonized images) is found through the settings of
    whoever reads it, and the checkpoint is checked against its recorded SHA-256."""
    import shutil
    from dataclasses import replace

    from harmonize.jobs import evaluate_methods
    from models_ml.jobs import extract_features

    settings, result = trained
    moved = tmp_path / "moved"
    shutil.copytree(settings.data_root, moved / "data", symlinks=True)
    shutil.copytree(settings.cache_dir, moved / "cache")
    with sqlite3.connect(settings.warehouse) as source, sqlite3.connect(moved / "warehouse.sqlite") as copy:
        source.backup(copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relocated = replace(
        settings, data_root=moved / "data", warehouse=moved / "warehouse.sqlite", cache_dir=moved / "cache"
    )
    _, summary = extract_features(relocated, run_id=result.run_id, permutations=10)
    assert summary.images > 0
    evaluate_methods(
        relocated, cohort="scanner_d110_vs_s120", reference="D110", methods=["minmax"], epochs=1, field_mm=0
    )
    checkpoint = moved / "cache" / "runs" / result.run_id / "model.pt"
    checkpoint.write_bytes(checkpoint.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        extract_features(relocated, run_id=result.run_id, permutations=10)
