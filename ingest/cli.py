"""``xrh ingest csv | dicom | cache | all``: files on disk into raw warehouse tables."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect

log = logging.getLogger(__name__)


def csv_step(args: argparse.Namespace, settings: Settings) -> int:
    """Load the MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG CSVs into raw tables (unchanged files are skipped)."""
    from ingest.csv_load import check_release_counts, load_csv_tables
    from ingest.schemas import RAW_TABLES_FILE, load_spec

    spec = load_spec(RAW_TABLES_FILE, *[Path(p) for p in args.spec or ()])
    parameters = {"step": "csv", "files": str(settings.physionet_files.resolve()), "tables": args.tables or "all"}
    with connect(settings.warehouse) as conn, recorded_run(conn, "ingest_csv", parameters) as run:
        results = load_csv_tables(
            conn, settings.warehouse, settings.physionet_files, spec, tables=args.tables, run_id=run.run_id
        )
        checks = check_release_counts(conn, spec)
    for result in results:
        print(f"{result.table:32} {result.status:9} {result.rows:>10,} rows  {result.file}")
    mismatches = [(name, expected, loaded) for name, expected, loaded, status in checks if status != "matches release"]
    if args.expect_full_release and mismatches:
        for name, expected, loaded in mismatches:
            print(f"release check failed: {name} has {loaded:,} rows, the full release has {expected:,}")
        return 1
    return 0


def dicom_step(args: argparse.Namespace, settings: Settings) -> int:
    """Read the headers of every DICOM file under FOLDER (default: MIMIC-CXR's files/) into raw_dicom_headers."""
    from ingest.dicom_headers import ingest_dicom_headers

    project = settings.mimic_cxr
    folder = Path(args.folder) if args.folder else project / "files"
    parameters = {"step": "dicom", "folder": str(folder.resolve())}
    with connect(settings.warehouse) as conn, recorded_run(conn, "ingest_dicom", parameters):
        summary = ingest_dicom_headers(
            conn,
            folder,
            stored_relative_to=project,
            dcm_only=args.folder is None,
            workers=args.workers or settings.worker_count,
        )
    print(
        f"{summary.scanned:,} files scanned, {summary.unchanged:,} unchanged, {summary.removed:,} removed; "
        f"raw_dicom_headers has {summary.headers:,} rows, raw_dicom_rejects {summary.rejects:,}"
    )
    return 0


def cache_step(args: argparse.Namespace, settings: Settings) -> int:
    """Decode every ingested DICOM once into the preprocessed-image cache."""
    from ingest.images import Preprocessing, fill_cache

    preprocessing = Preprocessing(size=args.size, window=args.window, equalize=args.equalize)
    project = settings.mimic_cxr
    with connect(settings.warehouse) as conn:
        rows = conn.execute(
            "select coalesce(dicom_id, SOPInstanceUID), path from raw_dicom_headers order by path"
        ).fetchall()
    images = [(dicom_id, project / path) for dicom_id, path in rows]
    cached, errors = fill_cache(
        settings.cache_dir, preprocessing, images, workers=args.workers or settings.worker_count
    )
    for message in errors:
        log.error("%s", message)
    print(
        f"{cached:,} images newly cached under {settings.cache_dir / 'images' / preprocessing.key()}, "
        f"{len(errors)} failed"
    )
    return 1 if errors else 0


def all_step(args: argparse.Namespace, settings: Settings) -> int:
    """CSV loads, then DICOM headers."""
    args.folder = None
    return csv_step(args, settings) or dicom_step(args, settings)


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

    def add_workers(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--workers", type=int, default=0, help="worker processes (default: the workers setting)")

    csv = steps.add_parser("csv", help="CSV files into raw tables", description=csv_step.__doc__)
    add_csv_options(csv)
    csv.set_defaults(handler=csv_step)

    dicom = steps.add_parser("dicom", help="DICOM headers into raw_dicom_headers", description=dicom_step.__doc__)
    dicom.add_argument("folder", nargs="?", help="any folder of DICOM files, any depth and file names")
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
    add_workers(cache)
    cache.set_defaults(handler=cache_step)

    everything = steps.add_parser("all", help="csv, then dicom", description=all_step.__doc__)
    add_csv_options(everything)
    add_workers(everything)
    everything.set_defaults(handler=all_step)
