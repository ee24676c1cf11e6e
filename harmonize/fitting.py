"""Fit a method on a cohort's reference group (training split only) and apply it to the cohort's images; an
acquisition-aware method (``harmonize.scanners``) is fitted on every training image, one map per scanner, and reads each
image's header when it is applied.

Images are read as presentation values (modality LUT applied, MONOCHROME1 inverted; unsigned 16-bit when the values
are integers) through ``ingest.images``; harmonized images are written as 16-bit PNG files (values rounded and
clipped to 0-65535) under ``<cache_dir>/harmonized/<run_id>/`` and indexed in ``harm_images`` (paths relative to
the cache folder), with the reason an acquisition-aware method left an image (partly) as it was. Parameters go to
``harm_params`` as JSON of plain arrays.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from harmonize import scanners
from harmonize.acquisition import acquisition_of
from harmonize.common import Params, params_from_json, params_to_json, set_threads
from harmonize.methods import check_method, image_method, reads_acquisition
from harmonize.results import TABLES
from ingest.images import load_values, stored_values
from models_ml.splits import split_members
from xrh.batches import BatchMapper, batches_of, in_this_process
from xrh.files import sha256_file, write_bytes_atomic
from xrh.progress import track
from xrh.tables import replace_run_rows

# zlib level of the harmonized PNGs: PIL's default (6) spent most of the apply step compressing; level 1 encodes
# several times faster for files a few percent larger (benchmarks/harmonize.py measures both).
PNG_COMPRESS_LEVEL = 1


def png16_bytes(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """A 16-bit grayscale PNG any viewer opens (values rounded and clipped to 0-65535)."""
    encoded = io.BytesIO()
    pixels = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    Image.fromarray(pixels).save(encoded, format="PNG", compress_level=compress_level)
    return encoded.getvalue()


def write_png16(path: Path, image: np.ndarray) -> None:
    """:func:`png16_bytes` written atomically."""
    write_bytes_atomic(path, png16_bytes(image))


def read_png16(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.uint16)


@dataclass(frozen=True)
class CohortImage:
    dicom_id: str
    path: Path
    split: str
    energy_group: str
    subject_id: int
    label: int


def cohort_images(
    conn: sqlite3.Connection, mimic_cxr: Path, cohort: str, *, seed: int, scheme: str = "standard"
) -> list[CohortImage]:
    """The cohort's images in their split (``xrh split`` with this scheme and seed)."""
    members = split_members(conn, cohort, scheme=scheme, seed=seed)
    return [
        CohortImage(
            m["dicom_id"], mimic_cxr / m["dicom_path"], m["split"], m["energy_group"], m["subject_id"], m["label"]
        )
        for m in members
    ]


def without_pixel_spacing(conn: sqlite3.Connection, images: list[CohortImage]) -> set[str]:
    """The dicom_ids of ``images`` whose header gives no pixel spacing (NULL in the ``acquisition`` mart: neither
    PixelSpacing nor ImagerPixelSpacing holds a positive number; real archives write ``0\\0`` for unknown), on which
    no field in mm can be cut."""
    wanted = {i.dicom_id for i in images}
    rows = conn.execute("select dicom_id from acquisition where pixel_spacing_mm is null")
    return {dicom_id for (dicom_id,) in rows if dicom_id in wanted}


def reference_images(images: list[CohortImage], cohort: str, reference: str) -> list[CohortImage]:
    """What every fit reads: the training-split images of the ``reference`` group (a ValueError naming the groups
    there are when it has none)."""
    chosen = [i for i in images if i.split == "train" and i.energy_group == reference]
    if not chosen:
        groups = sorted({i.energy_group for i in images})
        raise ValueError(f"no training images of reference group {reference!r} in cohort {cohort!r}; groups: {groups}")
    return chosen


def fit_sets(images: list[CohortImage], cohort: str, reference: str, method: str) -> tuple[list[Path], list[Path]]:
    """The fit's reference images (:func:`reference_images`) and, for an acquisition-aware method, every other
    training-split image (each scanner's own images); no test or validation image is ever fitted on."""
    chosen = reference_images(images, cohort, reference)
    if not reads_acquisition(method):
        return [i.path for i in chosen], []
    others = [i.path for i in images if i.split == "train" and i.energy_group != reference]
    return [i.path for i in chosen], others


@dataclass(frozen=True)
class Harmonization:
    """A fitted method as a picklable function of presentation values (and, for the acquisition-aware methods, the
    image's dataset), for worker processes and Dask workers: each call gives the image ``threads`` threads
    (:func:`harmonize.common.set_threads`)."""

    method: str
    params: Params
    threads: int = 1

    def __call__(self, values: np.ndarray, dataset: pydicom.Dataset | None = None) -> np.ndarray:
        set_threads(self.threads)
        if reads_acquisition(self.method):
            if dataset is None:
                raise ValueError(f"{self.method!r} reads the image's header: pass its dataset")
            return scanners.apply(values, acquisition_of(dataset), self.params)
        return image_method(self.method).apply(values, self.params)

    def fallback(self, dataset: pydicom.Dataset) -> str | None:
        """Why this image is (partly) left as it is (acquisition-aware methods), or None."""
        if not reads_acquisition(self.method):
            return None
        return scanners.fallback_reason(self.params, acquisition_of(dataset))

    def fallbacks(self, paths: list[Path]) -> list[str | None]:
        """Worker: :meth:`fallback` of each file, from its header alone."""
        return [self.fallback(pydicom.dcmread(path, stop_before_pixels=True)) for path in paths]

    def variant(self) -> str:
        """The method and a digest of its parameters: what names its cached analysis images."""
        return f"{self.method}-{hashlib.sha256(params_to_json(self.params).encode()).hexdigest()[:12]}"


def fallback_reasons(harmonization: Harmonization, paths: list[Path], map_batches: BatchMapper) -> list[str | None]:
    """:meth:`Harmonization.fallback` of every file, its headers read in batches by ``map_batches``."""
    return [reason for batch in map_batches(harmonization.fallbacks, batches_of(paths)) for reason in batch]


def summarize_batch(method: str, threads: int, paths: list[Path]) -> Params:
    """Worker: the method's fit statistics of a batch of images, combined (one image in memory at a time)."""
    set_threads(threads)
    return image_method(method).summarize_all(load_values(path) for path in paths)


def _read_with_acquisition(work: list[tuple[Path, bool]]):
    for path, is_reference in work:
        dataset = pydicom.dcmread(path)
        yield stored_values(dataset), acquisition_of(dataset), is_reference


def summarize_scanner_batch(
    method: str,
    stage: int,
    fitted: Params | None,
    threads: int,
    work: list[tuple[Path, bool]],
    bone_model: Params | None = None,
) -> scanners.ScannerSummaries:
    """Worker: one pass's per-scanner summaries of a batch of ``(path, is a reference image)``."""
    set_threads(threads)
    return scanners.summarize_pass(method, stage, fitted, _read_with_acquisition(work), bone_model=bone_model)


def fit_parameters(
    method: str,
    paths: list[Path],
    map_batches: BatchMapper,
    *,
    threads: int = 1,
    other_paths: list[Path] = (),
    bone_model: Params | None = None,
) -> Params:
    """Fit ``method`` on the reference images at ``paths`` in one streamed pass per stage: each batch's statistics
    are summed by ``map_batches`` (local processes, Dask) and the batch sums combined in order, so the parameters do
    not depend on how many workers there were and memory does not grow with the number of images.

    The acquisition-aware methods also read ``other_paths`` (the other scanners' own images) and fit one map per
    scanner; the pixel-only methods read the reference images only. A method with an ``energy`` stage needs
    ``bone_model`` (:mod:`harmonize.bone`), which its parameters then hold.
    """
    if reads_acquisition(method):
        batches = batches_of([(path, True) for path in paths] + [(path, False) for path in other_paths])
        fitted = None
        for stage in range(len(scanners.stages_of(method))):
            # The first pass is given the bone model; the later ones find it in the parameters fitted so far.
            summarize = partial(
                summarize_scanner_batch, method, stage, fitted, threads, bone_model=None if fitted else bone_model
            )
            done = map_batches(summarize, batches)
            progress = track(done, len(batches), f"fitting {method}, stage {stage + 1}", unit="batches")
            fitted = scanners.finish_pass(method, stage, fitted, progress, bone_model=bone_model)
        return fitted
    chosen = image_method(method)
    batches = batches_of(paths)
    done = map_batches(partial(summarize_batch, method, threads), batches)
    return chosen.fit_summaries(track(done, len(batches), f"fitting {method}", unit="batches"))


def fit_cohort(
    method: str,
    images: list[CohortImage],
    cohort: str,
    reference: str,
    map_batches: BatchMapper,
    *,
    threads: int = 1,
    bone_model: Params | None = None,
) -> tuple[Params, int]:
    """The parameters of ``method`` fitted on the cohort's :func:`fit_sets`, and how many reference images."""
    references, others = fit_sets(images, cohort, reference, method)
    fitted = fit_parameters(method, references, map_batches, threads=threads, other_paths=others, bone_model=bone_model)
    return fitted, len(references)


def fit(
    conn: sqlite3.Connection,
    mimic_cxr: Path,
    method: str,
    cohort: str,
    reference: str,
    run_id: str,
    *,
    split_seed: int,
    map_batches: BatchMapper = in_this_process,
    threads: int = 1,
    bone_model: Params | None = None,
) -> int:
    """Fit ``method`` on the training-split images of the ``reference`` energy group (an acquisition-aware method:
    on every training image, each scanner on its own, the reference scanner chosen from the reference group; with an
    ``energy`` stage, reading ``bone_model``); store harm_params."""
    check_method(method)  # an unknown name fails before any image is read
    images = cohort_images(conn, mimic_cxr, cohort, seed=split_seed)
    params, references = fit_cohort(
        method, images, cohort, reference, map_batches, threads=threads, bone_model=bone_model
    )
    fitted = {
        "method": method,
        "cohort_name": cohort,
        "reference": reference,
        "reference_images": references,
        "parameters": params_to_json(params),
    }
    replace_run_rows(conn, {TABLES["harm_params"]: [fitted]}, run_id)
    return references


def apply_batch(harmonization: Harmonization, work: list[tuple[Path, Path]]) -> list[tuple[str, int, str | None]]:
    """Harmonize each ``(source DICOM, target PNG)`` pair: files in, files out, no warehouse. Returns each PNG's
    SHA-256 and size and why the image fell back (acquisition-aware methods), for its ``harm_images`` row."""
    written = []
    for source, target in work:
        dataset = pydicom.dcmread(source)
        write_png16(target, harmonization(stored_values(dataset), dataset))
        written.append((sha256_file(target), target.stat().st_size, harmonization.fallback(dataset)))
    return written


def apply(
    conn: sqlite3.Connection,
    mimic_cxr: Path,
    cache_dir: Path,
    fit_run_id: str,
    run_id: str,
    *,
    split_seed: int,
    map_batches: BatchMapper = in_this_process,
    threads: int = 1,
) -> int:
    """Harmonize every image of the fitted cohort with the stored parameters; write PNGs and harm_images.

    The images are harmonized in batches by ``map_batches`` (local processes, a Dask cluster from the flows); the
    index is written here, once every batch is done."""
    row = conn.execute(
        "select method, cohort_name, parameters from harm_params where run_id = ?", (fit_run_id,)
    ).fetchone()
    if row is None:
        raise ValueError(f"no fitted parameters for run {fit_run_id!r} in harm_params; run `xrh harmonize fit`")
    method, cohort, parameters = row
    folder = cache_dir / "harmonized" / run_id
    images = cohort_images(conn, mimic_cxr, cohort, seed=split_seed)
    work = [(image.path, folder / image.dicom_id[:2] / f"{image.dicom_id}.png") for image in images]
    batches = batches_of(work)
    done = map_batches(partial(apply_batch, Harmonization(method, params_from_json(parameters), threads)), batches)
    written = [file for batch in track(done, len(batches), f"applying {method}", unit="batches") for file in batch]
    records = [  # paths relative to the cache folder, so the index survives a moved data root
        {
            "dicom_id": image.dicom_id,
            "method": method,
            "fit_run_id": fit_run_id,
            "path": str(target.relative_to(cache_dir)),
            "sha256": sha256,
            "bytes": size,
            "fallback": fallback,
        }
        for image, (_, target), (sha256, size, fallback) in zip(images, work, written, strict=True)
    ]
    replace_run_rows(conn, {TABLES["harm_images"]: records}, run_id)
    return len(records)
