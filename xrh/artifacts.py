"""The files jobs write, recorded in the ``artifacts`` table and found again through the settings.

A job records each file it wrote under the cache folder with its SHA-256 (:func:`record_artifacts`); a reader asks
for a run's file by kind (:func:`artifact_path`), gets it resolved under *its* settings' cache folder (so a moved data
root or another working folder works) and checked against the recorded SHA-256, with a clear error when the file is
missing or changed. No reader rebuilds a path from a folder layout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from xrh.files import sha256_file
from xrh.runs import TABLES
from xrh.tables import replace_rows
from xrh.warehouse import table_exists

ARTIFACTS = TABLES["artifacts"]


class ArtifactError(ValueError):
    """A recorded file is missing, or not the file that was recorded."""


def record_artifacts(conn: sqlite3.Connection, cache_dir: Path, run_id: str, files: Mapping[str, Path]) -> None:
    """Record ``files`` (kind -> path under ``cache_dir``) as the run's artifacts, replacing earlier records of the
    same kinds."""
    for kind, path in files.items():
        row = {
            "run_id": run_id,
            "kind": kind,
            "path": str(path.relative_to(cache_dir)),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        replace_rows(conn, {ARTIFACTS: [row]}, where={"run_id": run_id, "kind": kind})


def recorded_artifact(conn: sqlite3.Connection, run_id: str, kind: str) -> tuple[str, str] | None:
    """``(path relative to the cache folder, SHA-256)`` recorded for the run's file of ``kind``, or None."""
    if not table_exists(conn, ARTIFACTS.name):
        return None
    return conn.execute("select path, sha256 from artifacts where run_id = ? and kind = ?", (run_id, kind)).fetchone()


def artifact_path(conn: sqlite3.Connection, cache_dir: Path, run_id: str, kind: str) -> Path | None:
    """The run's file of ``kind`` under ``cache_dir``, checked against its recorded SHA-256; None if none was recorded.

    Raises
    ------
    ArtifactError
        The file is missing or its SHA-256 differs from the recorded one; the message says what to do.
    """
    row = recorded_artifact(conn, run_id, kind)
    if row is None:
        return None
    path = cache_dir / row[0]
    if not path.is_file():
        raise ArtifactError(f"{kind} of run {run_id} not found at {path}: is the cache folder setting right?")
    if sha256_file(path) != row[1]:
        raise ArtifactError(
            f"{path} ({kind} of run {run_id}) is not the file the run wrote (its SHA-256 differs); run the job again"
            " or restore the file"
        )
    return path
