"""Write a whole simulated MIMIC release: MIMIC-IV hosp, MIMIC-CXR (DICOM, reports, lists), MIMIC-CXR-JPG CSVs.

The layout under ``<out>/physionet.org/files/`` is the one PhysioNet ships and ``wget -r`` mirrors (REFERENCE.md
section 1). The ground truth (phantom, scanner profile, true technique, true findings) goes to
``<out>/simulation_truth.csv.gz``, outside that layout; in paired mode every image is also rendered, pixel-aligned, as
each other unit would have taken it, under ``<out>/simulation_paired/<profile>/<dicom_id>.dcm``. The same seed gives
byte-identical files.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from simulate.dicom_writer import VIEW_CODES, dx_bytes, uid_from
from simulate.layout import (
    MIMIC_CXR,
    MIMIC_CXR_JPG,
    MIMICIV,
    ProjectWriter,
    csv_gz_bytes,
    cxr_study_folder,
    sha256_hex,
)
from simulate.phantom import FINDINGS
from simulate.population import LABEL_COLUMNS, Population, build_population, negbio_labels
from simulate.profiles import ScannerProfile, load_profiles
from simulate.render import ImageTask, counterpart_task, render
from simulate.reports import report_text
from simulate.spectra import tube_spectrum
from xrh.files import write_bytes_atomic
from xrh.processes import worker_pool
from xrh.progress import track

PATIENTS_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod")
ADMISSIONS_COLUMNS = (
    "subject_id",
    "hadm_id",
    "admittime",
    "dischtime",
    "deathtime",
    "admission_type",
    "admit_provider_id",
    "admission_location",
    "discharge_location",
    "insurance",
    "language",
    "marital_status",
    "race",
    "edregtime",
    "edouttime",
    "hospital_expire_flag",
)
TRANSFERS_COLUMNS = ("subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime", "outtime")
SERVICES_COLUMNS = ("subject_id", "hadm_id", "transfertime", "prev_service", "curr_service")
METADATA_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
TRUTH_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "phantom_id",
    "profile",
    "projection",
    "view_position",
    "kvp",
    "mas",
    "exposure_time_ms",
    "detector_type",
    "source_to_image_cm",
    "grid",
    "rows",
    "columns",
    "pixel_spacing_mm",
    "photometric",
    *FINDINGS,
)


@dataclass(frozen=True)
class SimulationSummary:
    root: Path
    patients: int
    studies: int
    images: int
    images_by_profile: dict[str, int]
    paired_images: int


@lru_cache(maxsize=1)
def _profiles() -> dict[str, ScannerProfile]:
    return load_profiles()


@dataclass(frozen=True)
class _RenderJob:
    task: ImageTask
    profile: str
    image_size: int | None
    paired_profiles: tuple[str, ...]
    cxr_root: Path
    paired_root: Path


def _render_and_write(job: _RenderJob) -> dict[str, object]:
    """Worker: render one image (and its counterparts in paired mode), write the files, return what was written."""
    profiles = _profiles()
    profile = profiles[job.profile]
    pixels, header = render(job.task, profile, job.image_size)
    data = dx_bytes(header, pixels)
    relative = f"{cxr_study_folder(job.task.subject_id, job.task.study_id)}/{job.task.dicom_id}.dcm"
    write_bytes_atomic(job.cxr_root / relative, data)
    for other in job.paired_profiles:
        counterpart = counterpart_task(job.task, profile, profiles[other])
        paired_pixels, paired_header = render(counterpart, profiles[other], job.image_size, geometry_of=profile)
        write_bytes_atomic(job.paired_root / other / f"{job.task.dicom_id}.dcm", dx_bytes(paired_header, paired_pixels))
    return {
        "relative": relative,
        "digest": sha256_hex(data),
        "rows": pixels.shape[0],
        "columns": pixels.shape[1],
        "pixel_spacing_mm": header.pixel_spacing_mm,
        "orientation": header.orientation,
    }


def _single_threaded_worker() -> None:
    """One BLAS thread per worker process: the workers already fill the CPUs, more threads only contend."""
    threadpool_limits(1)


def _image_tasks(population: Population, seed: int) -> list[tuple[ImageTask, str]]:
    studies = {study.study_id: study for study in population.studies}
    tasks = []
    for index, image in enumerate(population.images):
        study = studies[image.study_id]
        subject = population.subjects[image.subject_id]
        tasks.append(
            (
                ImageTask(
                    dicom_id=image.dicom_id,
                    subject_id=image.subject_id,
                    study_id=image.study_id,
                    sex=subject["sex"],
                    anatomy_seed=subject["anatomy_seed"],
                    findings=study.findings,
                    finding_seed=study.finding_seed,
                    acquired=study.study_datetime,
                    study_instance_uid=uid_from("study", seed, study.study_id),
                    projection=image.projection,
                    view_position=image.view_position,
                    kvp=image.kvp,
                    mas=image.mas,
                    exposure_time_ms=image.exposure_time_ms,
                    landscape=image.landscape,
                    image_seed=int(np.random.SeedSequence([seed, 3, index]).generate_state(1)[0]),
                ),
                image.profile,
            )
        )
    return tasks


def _study_time(value) -> str:
    """MIMIC-CXR-JPG's StudyTime: HHMMSS.fff read as a float, so leading zeros are lost (``80556.875``)."""
    return repr(round(value.hour * 10000 + value.minute * 100 + value.second + value.microsecond / 1e6, 3))


def simulate_dataset(
    out: Path,
    *,
    patients: int,
    seed: int = 0,
    image_size: int | None = 320,
    paired: bool = False,
    workers: int | None = None,
) -> SimulationSummary:
    """Write a simulated MIMIC-IV / MIMIC-CXR / MIMIC-CXR-JPG release under ``out``.

    Parameters
    ----------
    patients
        Number of subjects (about 4.8 images each).
    image_size
        Longer side of every image in pixels (``None``: the units' native matrices, about 2,000-3,000 pixels).
    paired
        Also render every image as each other scanner profile would have taken it (ground truth for harmonization).
    workers
        Rendering processes (default: one per CPU).
    """
    out = Path(out)
    profiles = _profiles()
    population = build_population(patients, profiles, np.random.default_rng(seed))
    files = out / "physionet.org" / "files"

    hosp = ProjectWriter(files / MIMICIV)
    hosp.write_csv_gz("hosp/patients.csv.gz", PATIENTS_COLUMNS, population.patients)
    hosp.write_csv_gz("hosp/admissions.csv.gz", ADMISSIONS_COLUMNS, population.admissions)
    hosp.write_csv_gz("hosp/transfers.csv.gz", TRANSFERS_COLUMNS, population.transfers)
    hosp.write_csv_gz("hosp/services.csv.gz", SERVICES_COLUMNS, population.services)
    hosp.write_csv_gz("hosp/provider.csv.gz", ("provider_id",), ([p] for p in population.providers))
    hosp.finish()

    cxr = ProjectWriter(files / MIMIC_CXR)
    report_rng = np.random.default_rng([seed, 2])
    for study in population.studies:
        relative = cxr_study_folder(study.subject_id, study.study_id) + ".txt"
        text = report_text(study, profiles[study.profile].procedure, report_rng)
        cxr.write(relative, text.encode("utf-8"))

    tasks = _image_tasks(population, seed)
    paired_root = out / "simulation_paired"
    jobs = [
        _RenderJob(
            task,
            profile,
            image_size,
            tuple(p for p in profiles if p != profile) if paired else (),
            cxr.root,
            paired_root,
        )
        for task, profile in tasks
    ]
    for kvp, filtration in {(t.kvp, profiles[p].filtration_mm_al) for t, p in tasks}:
        tube_spectrum(kvp, filtration)  # warm the cache once, before the workers fork
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        with worker_pool(workers, start_method="fork", initializer=_single_threaded_worker) as executor:
            written_iter = executor.map(_render_and_write, jobs, chunksize=4)
            written = list(track(written_iter, len(jobs), "simulating images", unit="images"))
    else:
        written = list(track(map(_render_and_write, jobs), len(jobs), "simulating images", unit="images"))
    for result in written:
        cxr.record(str(result["relative"]), str(result["digest"]))

    by_id = {task.dicom_id: (task, profile, result) for (task, profile), result in zip(tasks, written, strict=False)}
    records = sorted(
        (image.subject_id, image.study_id, image.dicom_id, by_id[image.dicom_id][2]["relative"])
        for image in population.images
    )
    cxr.write_csv_gz("cxr-record-list.csv.gz", ("subject_id", "study_id", "dicom_id", "path"), records)
    study_rows = sorted(
        (s.subject_id, s.study_id, cxr_study_folder(s.subject_id, s.study_id) + ".txt") for s in population.studies
    )
    cxr.write_csv_gz("cxr-study-list.csv.gz", ("subject_id", "study_id", "path"), study_rows)
    provider_rows = sorted((study_id, *ids) for study_id, ids in population.study_providers.items())
    cxr.write_csv_gz(
        "cxr-provider-list.csv.gz",
        ("study_id", "ordering_provider_id", "attending_provider_id", "resident_provider_id"),
        provider_rows,
    )
    cxr.finish()

    jpg = ProjectWriter(files / MIMIC_CXR_JPG)
    metadata, split, truth = [], [], []
    for subject_id, study_id, dicom_id, _ in records:
        task, profile_name, result = by_id[dicom_id]
        profile = profiles[profile_name]
        metadata.append(
            (
                dicom_id,
                subject_id,
                study_id,
                profile.procedure,
                task.view_position,
                result["rows"],
                result["columns"],
                task.acquired.strftime("%Y%m%d"),
                _study_time(task.acquired),
                profile.procedure,
                VIEW_CODES.get(task.view_position, ("", ""))[1],
                result["orientation"] if task.view_position in VIEW_CODES else "",
            )
        )
        split.append((dicom_id, study_id, subject_id, population.subjects[subject_id]["split"]))
        truth.append(
            (
                dicom_id,
                subject_id,
                study_id,
                task.anatomy_seed,
                profile_name,
                task.projection,
                task.view_position,
                task.kvp,
                task.mas,
                task.exposure_time_ms,
                profile.detector.detector_type,
                profile.source_to_image_cm,
                int(profile.grid),
                result["rows"],
                result["columns"],
                round(float(result["pixel_spacing_mm"]), 6),
                profile.processing.photometric,
                *(int(f in task.findings) for f in FINDINGS),
            )
        )
    jpg.write_csv_gz("mimic-cxr-2.0.0-metadata.csv.gz", METADATA_COLUMNS, metadata)
    jpg.write_csv_gz("mimic-cxr-2.0.0-split.csv.gz", ("dicom_id", "study_id", "subject_id", "split"), split)
    label_rng = np.random.default_rng([seed, 4])
    labelled = sorted(
        (s for s in population.studies if label_rng.random() >= 0.004), key=lambda s: (s.subject_id, s.study_id)
    )
    label_header = ("subject_id", "study_id", *LABEL_COLUMNS)
    jpg.write_csv_gz(
        "mimic-cxr-2.0.0-chexpert.csv.gz",
        label_header,
        ((s.subject_id, s.study_id, *(s.labels[c] for c in LABEL_COLUMNS)) for s in labelled),
    )
    negbio = [(s, negbio_labels(label_rng, s.labels)) for s in labelled]
    jpg.write_csv_gz(
        "mimic-cxr-2.0.0-negbio.csv.gz",
        label_header,
        ((s.subject_id, s.study_id, *(labels[c] for c in LABEL_COLUMNS)) for s, labels in negbio),
    )
    jpg.finish()

    write_bytes_atomic(out / "simulation_truth.csv.gz", csv_gz_bytes(TRUTH_COLUMNS, truth))
    counts = Counter(profile for _, profile in tasks)
    return SimulationSummary(
        root=files,
        patients=patients,
        studies=len(population.studies),
        images=len(tasks),
        images_by_profile=dict(sorted(counts.items())),
        paired_images=len(tasks) * (len(profiles) - 1) if paired else 0,
    )
