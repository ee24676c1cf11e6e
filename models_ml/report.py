"""What models_ml adds to the run report (xrh.report): the latest training run's metrics and pictures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from xrh.report import ReportSection
from xrh.runs import latest_succeeded_run

TRAINING_PICTURES = ("confusion_matrix.png", "training_curves.png", "feature_embedding.png")


def training_pictures(conn: sqlite3.Connection, cache_dir: Path) -> list[Path]:
    """The PNGs of the latest finished training run (its confusion matrix, curves and feature embedding)."""
    run_id = latest_succeeded_run(conn, "train")
    return [cache_dir / "runs" / run_id / name for name in TRAINING_PICTURES] if run_id else []


SECTIONS = (
    ReportSection(
        "classifier-metrics",
        "Scanner classifier metrics (latest training run)",
        "report_classifier_metrics",
        "select run_id, split, metric, value from report_classifier_metrics order by split, metric",
        order=40,
        pictures=training_pictures,
    ),
)
