"""What models_ml adds to the run report (xrh.report): the latest training run's metrics and pictures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from xrh.artifacts import artifact_path
from xrh.report import ReportSection
from xrh.runs import latest_succeeded_run

PICTURES = ("confusion_matrix", "training_curves", "feature_embedding")


def training_pictures(conn: sqlite3.Connection, cache_dir: Path) -> list[Path]:
    """The recorded figures of the latest finished training run (confusion matrix, curves, feature embedding)."""
    run_id = latest_succeeded_run(conn, "train")
    found = [artifact_path(conn, cache_dir, run_id, kind) for kind in PICTURES] if run_id else []
    return [path for path in found if path is not None]


SECTIONS = (
    ReportSection(
        "classifier-metrics",
        "Scanner classifier metrics (latest training run)",
        "report_classifier_metrics",
        "select run_id, split, metric, class_name, value from report_classifier_metrics"
        " order by split, metric, class_name",
        order=40,
        pictures=training_pictures,
    ),
)
