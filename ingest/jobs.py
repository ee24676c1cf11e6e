"""The ingest steps as recorded runs over the settings: what ``xrh ingest`` and the ``ingest`` flow both call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.csv_load import FileResult, check_release_counts, load_csv_tables
from ingest.dicom_headers import DicomIngestSummary, ingest_dicom_headers
from ingest.schemas import RAW_TABLES_FILE, load_spec
from xrh.batches import BatchMapper
from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect


@dataclass(frozen=True)
class CsvOutcome:
    files: list[FileResult]
    release_checks: list[tuple[str, int | None, int, str]]

    @property
    def mismatches(self) -> list[tuple[str, int | None, int]]:
        """Tables whose row counts differ from the full release's (tables without a release count are not judged)."""
        return [
            (name, expected, loaded)
            for name, expected, loaded, status in self.release_checks
            if status in ("differs from release", "not loaded")
        ]


def check_data_root(settings: Settings) -> None:
    """A ValueError that names the fix unless the data root holds ``physionet.org/files`` (before anything is created:
    a mistyped data root must not leave an empty warehouse behind)."""
    if not settings.physionet_files.is_dir():
        raise ValueError(
            f"the data root {settings.data_root} has no physionet.org/files folder; run `xrh download` (the real MIMIC "
            "data) or `xrh simulate` (the stand-in) first, or set XRH_DATA_ROOT to the folder that holds it"
        )


def load_csv(settings: Settings, *, tables: list[str] | None = None, extra_specs: Iterable[Path] = ()) -> CsvOutcome:
    """Load the MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG CSVs into raw tables (unchanged files are skipped).

    Raises
    ------
    CsvLoadFailed
        Files that could not be loaded, raised after every other file was loaded (the run is recorded as failed).
    """
    check_data_root(settings)
    spec = load_spec(RAW_TABLES_FILE, *extra_specs)
    parameters = {"step": "csv", "files": str(settings.physionet_files.resolve()), "tables": tables or "all"}
    with connect(settings.warehouse) as conn, recorded_run(conn, "ingest_csv", parameters) as run:
        files = load_csv_tables(
            conn, settings.warehouse, settings.physionet_files, spec, tables=tables, run_id=run.run_id
        )
        return CsvOutcome(files, check_release_counts(conn, spec))


def read_dicom_headers(
    settings: Settings,
    *,
    folder: Path | None = None,
    workers: int = 0,
    map_batches: BatchMapper | None = None,
    allow_removals: bool = False,
) -> DicomIngestSummary:
    """Bring raw_dicom_headers up to date with the DICOM files under ``folder`` (default: MIMIC-CXR's files/).

    Refuses (:class:`ingest.dicom_headers.RemovalsRefused`) to remove the rows of most known files at once unless
    ``allow_removals``: an unmounted disk must not wipe the study."""
    if folder is None:
        check_data_root(settings)
    project = settings.mimic_cxr
    root = folder or project / "files"
    parameters = {"step": "dicom", "folder": str(root.resolve())}
    with connect(settings.warehouse) as conn, recorded_run(conn, "ingest_dicom", parameters):
        return ingest_dicom_headers(
            conn,
            root,
            stored_relative_to=project,
            dcm_only=folder is None,
            workers=workers or settings.worker_count,
            map_batches=map_batches,
            allow_removals=allow_removals,
        )
