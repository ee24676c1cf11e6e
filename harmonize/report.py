"""What harmonize adds to the run report (xrh.report): the leaderboard and the latest evaluation's panel."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from xrh.artifacts import artifact_path
from xrh.report import ReportSection
from xrh.runs import latest_succeeded_run


def evaluation_panel(conn: sqlite3.Connection, cache_dir: Path) -> list[Path]:
    """The panel of the latest finished evaluation (images and histograms before and after each method)."""
    run_id = latest_succeeded_run(conn, "harmonize_evaluate")
    panel = artifact_path(conn, cache_dir, run_id, "panel") if run_id else None
    return [panel] if panel else []


SECTIONS = (
    ReportSection(
        "leaderboard",
        "Harmonization leaderboard",
        "harmonization_leaderboard",
        "select rank, method, run_id, retrained_balanced_accuracy, retrained_ci_low, retrained_ci_high,"
        " distance_difference, distance_difference_ci_low, distance_difference_ci_high, outline_only_balanced_accuracy,"
        " scalar_cues_balanced_accuracy, frame_outline_only_balanced_accuracy, frame_scalar_cues_balanced_accuracy,"
        " probe_balanced_accuracy, probe_rbf_balanced_accuracy, mmd_squared, frechet_distance, ssim, psnr,"
        " diagnostic_auc_mean, diagnostic_mean_difference, diagnostic_mean_difference_ci_low,"
        " diagnostic_mean_difference_ci_high, diagnostic_auc_gap, diagnostic_gap_ci_low, diagnostic_gap_ci_high,"
        " ranking, retrained_on from harmonization_leaderboard order by rank is null, rank, method",
        order=50,
        pictures=evaluation_panel,
    ),
)
