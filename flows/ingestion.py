"""Flows that bring files into raw tables: ``download`` (PhysioNet) and ``ingest`` (CSVs, then DICOM headers)."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import disk_retries, image_task_runner, jobs_of_this_flow_run, mapper_of, read_batch, settings
from ingest.download import PROJECT_NAMES, SubjectSelection, download_release, summary_lines
from ingest.jobs import load_csv, read_dicom_headers


@task(name="download from PhysioNet", cache_policy=NO_CACHE, **disk_retries())
def download_task(projects: list[str], first_subjects: int | None, dicom: bool) -> list[str]:
    # Credentials come from the environment or the netrc file of the machine running the flow, never parameters.
    reports = download_release(
        settings(),
        projects=projects,
        selection=SubjectSelection(first=first_subjects) if first_subjects else SubjectSelection(),
        dicom=dicom,
        interactive=False,
    )
    lines = summary_lines(reports)
    if not all(report.complete for report in reports):
        raise RuntimeError("download incomplete:\n" + "\n".join(lines))
    return lines


@flow(name="download", log_prints=True)
def download_flow(
    projects: list[str] | None = None, first_subjects: int | None = None, dicom: bool = True
) -> list[str]:
    """Fetch MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG files into the data root (checked against SHA256SUMS)."""
    lines = download_task(projects or list(PROJECT_NAMES), first_subjects, dicom)
    for line in lines:
        print(line)
    return lines


@task(name="load CSV files", cache_policy=NO_CACHE, **disk_retries())
def load_csv_task() -> list[tuple[str, str, int]]:
    outcome = load_csv(settings())
    return [(result.table, result.status, result.rows) for result in outcome.files]


@flow(name="ingest", log_prints=True, task_runner=image_task_runner())
def ingest_flow() -> dict[str, int]:
    """CSV files into raw tables, then the DICOM header walk mapped over batches on the Dask task runner."""
    with jobs_of_this_flow_run():
        for table, status, rows in load_csv_task():
            print(f"{table:32} {status:9} {rows:>10,} rows")
        summary = read_dicom_headers(settings(), map_batches=mapper_of(read_batch))
    print(
        f"{summary.scanned:,} DICOM files scanned, {summary.unchanged:,} unchanged; "
        f"raw_dicom_headers has {summary.headers:,} rows, raw_dicom_rejects {summary.rejects:,}"
    )
    return {"scanned": summary.scanned, "unchanged": summary.unchanged, "headers": summary.headers}
