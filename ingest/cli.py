"""``xrh ingest csv | dicom | cache | all``: files on disk into raw warehouse tables."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from xrh.settings import Settings
from xrh.warehouse import connect

log = logging.getLogger(__name__)


def csv_step(args: argparse.Namespace, settings: Settings) -> int:
    """Load the MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG CSVs into raw tables (unchanged files are skipped)."""
    from ingest.csv_load import CsvLoadFailed
    from ingest.jobs import load_csv

    try:
        outcome = load_csv(settings, tables=args.tables, extra_specs=[Path(p) for p in args.spec or ()])
    except CsvLoadFailed as failed:  # every other file loaded; list the failures, one line each, and exit with 1
        results, failures = failed.results, failed.errors
    else:
        results, failures = outcome.files, []
    for result in results:
        print(f"{result.table:32} {result.status:9} {result.rows:>10,} rows  {result.file}")
    for error in failures:
        log.error("%s", error)
    if failures:
        return 1
    if args.expect_full_release and outcome.mismatches:
        for name, expected, loaded in outcome.mismatches:
            print(f"release check failed: {name} has {loaded:,} rows, the full release has {expected:,}")
        return 1
    return 0


def dicom_step(args: argparse.Namespace, settings: Settings) -> int:
    """Read the headers of every DICOM file under FOLDER (default: MIMIC-CXR's files/) into raw_dicom_headers."""
    from ingest.dicom_headers import RemovalsRefused
    from ingest.jobs import read_dicom_headers

    folder = Path(args.folder) if args.folder else None
    try:
        summary = read_dicom_headers(settings, folder=folder, workers=args.workers, allow_removals=args.allow_removals)
    except (FileNotFoundError, RemovalsRefused) as error:
        log.error("%s", error)
        return 1
    print(
        f"{summary.scanned:,} files scanned, {summary.unchanged:,} unchanged, {summary.removed:,} removed; "
        f"raw_dicom_headers has {summary.headers:,} rows, raw_dicom_rejects {summary.rejects:,}"
    )
    return 0


def cache_step(args: argparse.Namespace, settings: Settings) -> int:
    """Decode every ingested DICOM once into the preprocessed-image cache."""
    from ingest.images import ImageCache, Preprocessing, fill_cache
    from xrh.batches import local_processes

    preprocessing = Preprocessing(size=args.size, window=args.window, equalize=args.equalize, field_mm=args.field_mm)
    project = settings.mimic_cxr
    with connect(settings.warehouse) as conn:
        rows = conn.execute("select dicom_id, path from raw_dicom_headers order by path").fetchall()
    images = [(dicom_id, project / path) for dicom_id, path in rows]
    cache = ImageCache(settings.cache_dir, preprocessing)
    with local_processes(args.workers or settings.worker_count) as map_batches:
        cached, errors = fill_cache(cache, images, map_batches=map_batches)
    for message in errors:
        log.error("%s", message)
    print(f"{cached:,} images newly cached under {cache.folder}, {len(errors)} failed")
    return 1 if errors else 0


def all_step(args: argparse.Namespace, settings: Settings) -> int:
    """CSV loads, then DICOM headers (also when a CSV failed: each step lists its own failures)."""
    args.folder = None
    csv_status = csv_step(args, settings)
    return dicom_step(args, settings) or csv_status


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="load CSVs and DICOM headers into raw tables",
        description="Turn the files under the data root (a PhysioNet mirror or `xrh simulate` output) into raw tables.",
    )
    steps = ingest.add_subparsers(dest="step", metavar="STEP", required=True)

    def add_csv_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tables", nargs="+", metavar="TABLE", help="only these raw tables (default: all)")
        parser.add_argument(
            "--spec",
            nargs="+",
            metavar="YAML",
            help="extra table specs (e.g. more MIMIC-IV hosp tables) in raw_tables.yaml's style",
        )
        parser.add_argument(
            "--expect-full-release",
            action="store_true",
            help="exit with 1 unless every table has the full release's row count",
        )

    def add_removals(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--allow-removals",
            action="store_true",
            help="remove the rows of vanished files even when the walk finds none or only part of the known files"
            " (without it such a walk is taken for an unmounted or half-copied disk and changes nothing)",
        )

    def add_workers(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--workers", type=int, default=0, help="worker processes (default: the workers setting)")

    csv = steps.add_parser("csv", help="CSV files into raw tables", description=csv_step.__doc__)
    add_csv_options(csv)
    csv.set_defaults(handler=csv_step)

    dicom = steps.add_parser("dicom", help="DICOM headers into raw_dicom_headers", description=dicom_step.__doc__)
    dicom.add_argument("folder", nargs="?", help="any folder of DICOM files, any depth and file names")
    add_removals(dicom)
    add_workers(dicom)
    dicom.set_defaults(handler=dicom_step)

    cache = steps.add_parser("cache", help="fill the preprocessed-image cache", description=cache_step.__doc__)
    cache.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    cache.add_argument(
        "--window",
        choices=("percentile", "minmax"),
        default="percentile",
        help="intensity window: 0.5-99.5 percentiles (default) or min-max",
    )
    cache.add_argument("--equalize", action="store_true", help="histogram-equalize after windowing")
    cache.add_argument(
        "--field-mm", type=float, default=0.0, help="a centred square of this many mm instead of the whole frame"
    )
    add_workers(cache)
    cache.set_defaults(handler=cache_step)

    everything = steps.add_parser("all", help="csv, then dicom", description=all_step.__doc__)
    add_csv_options(everything)
    add_removals(everything)
    add_workers(everything)
    everything.set_defaults(handler=all_step)
