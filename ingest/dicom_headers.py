"""DICOM headers into ``raw_dicom_headers``: typed acquisition columns plus the raw header bytes, in parallel.

Each file is read once, up to its pixel data: the first 64 KiB are parsed from memory (a DX header is a few KiB); a
longer header is parsed from the file with large values left unread (``defer_size``), so memory stays bounded whatever
private elements a file carries. The pixel data element's length is checked against the file size (a truncated file is
rejected, although a header-only read alone would not notice), and the bytes before the pixel data are kept as they are
when they fit in ``HEAD_BYTES`` (64 KiB; the typed columns are always kept, and ``header_length`` says how long
the header was), so any tag can be read later with ``pydicom.dcmread(io.BytesIO(header_bytes))`` without touching the
file again.

Files that are not DICOM (gzip, text, a forced read that finds no header), truncated, missing required tags, or that
cannot be parsed go to ``raw_dicom_rejects`` with the reason; they never stop the run and never become rows. So do
entries the walk cannot use: symlink loops, broken links, FIFOs, sockets and devices, unreadable folders. The walk is
incremental (unchanged path, size and modification time are skipped) and rows are committed in batches, so an
interrupted run loses at most the batch in flight and a re-run completes it; at most a few batches are in flight, so
memory is bounded by the batch size, not by the number of files.

A walk that finds none of the files it knew, or loses more than ``MAX_REMOVED_SHARE`` of them, is taken for an
unmounted or half-copied disk: it removes nothing and raises :class:`RemovalsRefused`, unless ``allow_removals``.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from xrh.batches import BatchMapper, batches_of
from xrh.files import file_kind
from xrh.processes import ordered_results, worker_pool
from xrh.progress import track
from xrh.tables import Column, Table, ensure_table
from xrh.warehouse import timestamp_now, write_transaction

log = logging.getLogger(__name__)
# Values that break a VR's rules ('pa' as a CS, 'Scintillator') are what real archives write; the warehouse keeps them
# as written and dbt judges them. pydicom would log a warning for each one.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

# Parsed from memory in one read, and the cap on the header bytes stored (a DX header is a few KiB; files with large
# private elements exceed it and keep their typed columns only).
HEAD_BYTES = 1 << 16
# Values longer than this are not read while parsing a long header (the typed columns are all short).
DEFER_BYTES = 1 << 12
# A walk that loses more than this share of the files it knew under its folder removes nothing unless told to.
MAX_REMOVED_SHARE = 0.10
FILES_PER_TASK = 64
# A batch handed to another mapper (a Prefect task on Dask) pays its bookkeeping, some 0.1-0.3 s: make it worth it.
FILES_PER_REMOTE_TASK = 1024
FILES_PER_COMMIT = 2000
REQUIRED_TAGS = ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")
MIMIC_PATH = re.compile(r"p(?P<subject>1\d{7})/s(?P<study>5\d{7})/(?P<dicom>[0-9a-f]{8}(?:-[0-9a-f]{8}){4})\.dcm$")
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # a malformed number; the raw header keeps the original text


def _pair(value: object, index: int) -> float | None:
    if isinstance(value, pydicom.multival.MultiValue) and len(value) > index:
        return _number(value[index])
    return None


def _code_meaning(ds: pydicom.Dataset, keyword: str) -> str | None:
    sequence = ds.get(keyword)
    if not sequence:
        return None
    return _text(sequence[0].get("CodeMeaning"))


# Typed columns: (column, declared type as in xrh.tables, extractor from the dataset). Names follow the DICOM keywords.
TAG_COLUMNS: tuple[tuple[str, str, object], ...] = (
    ("SOPClassUID", "text", lambda ds: _text(ds.get("SOPClassUID"))),
    ("SOPInstanceUID", "text", lambda ds: _text(ds.get("SOPInstanceUID"))),
    ("StudyInstanceUID", "text", lambda ds: _text(ds.get("StudyInstanceUID"))),
    ("SeriesInstanceUID", "text", lambda ds: _text(ds.get("SeriesInstanceUID"))),
    ("Modality", "text", lambda ds: _text(ds.get("Modality"))),
    ("SpecificCharacterSet", "text", lambda ds: _text(ds.get("SpecificCharacterSet"))),
    ("ImageType", "text", lambda ds: _text(ds.get("ImageType"))),
    ("StudyDate", "text", lambda ds: _text(ds.get("StudyDate"))),
    ("StudyTime", "text", lambda ds: _text(ds.get("StudyTime"))),
    ("AcquisitionDate", "text", lambda ds: _text(ds.get("AcquisitionDate"))),
    ("AcquisitionTime", "text", lambda ds: _text(ds.get("AcquisitionTime"))),
    ("PatientID", "text", lambda ds: _text(ds.get("PatientID"))),
    ("PatientSex", "text", lambda ds: _text(ds.get("PatientSex"))),
    ("BodyPartExamined", "text", lambda ds: _text(ds.get("BodyPartExamined"))),
    ("PerformedProcedureStepDescription", "text", lambda ds: _text(ds.get("PerformedProcedureStepDescription"))),
    ("ProcedureCodeSequence_CodeMeaning", "text", lambda ds: _code_meaning(ds, "ProcedureCodeSequence")),
    ("ViewPosition", "text", lambda ds: _text(ds.get("ViewPosition"))),
    ("ViewCodeSequence_CodeMeaning", "text", lambda ds: _code_meaning(ds, "ViewCodeSequence")),
    (
        "PatientOrientationCodeSequence_CodeMeaning",
        "text",
        lambda ds: _code_meaning(ds, "PatientOrientationCodeSequence"),
    ),
    ("AnatomicRegionSequence_CodeMeaning", "text", lambda ds: _code_meaning(ds, "AnatomicRegionSequence")),
    ("Manufacturer", "text", lambda ds: _text(ds.get("Manufacturer"))),
    ("ManufacturerModelName", "text", lambda ds: _text(ds.get("ManufacturerModelName"))),
    ("KVP", "real", lambda ds: _number(ds.get("KVP"))),
    ("Exposure", "real", lambda ds: _number(ds.get("Exposure"))),
    ("ExposureInuAs", "real", lambda ds: _number(ds.get("ExposureInuAs"))),
    ("ExposureInmAs", "real", lambda ds: _number(ds.get("ExposureInmAs"))),
    ("ExposureTime", "real", lambda ds: _number(ds.get("ExposureTime"))),
    ("ExposureTimeInuS", "real", lambda ds: _number(ds.get("ExposureTimeInuS"))),
    ("XRayTubeCurrent", "real", lambda ds: _number(ds.get("XRayTubeCurrent"))),
    ("XRayTubeCurrentInuA", "real", lambda ds: _number(ds.get("XRayTubeCurrentInuA"))),
    ("DistanceSourceToDetector", "real", lambda ds: _number(ds.get("DistanceSourceToDetector"))),
    ("Grid", "text", lambda ds: _text(ds.get("Grid"))),
    ("DetectorType", "text", lambda ds: _text(ds.get("DetectorType"))),
    ("PixelSpacing_row", "real", lambda ds: _pair(ds.get("PixelSpacing"), 0)),
    ("PixelSpacing_col", "real", lambda ds: _pair(ds.get("PixelSpacing"), 1)),
    ("ImagerPixelSpacing_row", "real", lambda ds: _pair(ds.get("ImagerPixelSpacing"), 0)),
    ("ImagerPixelSpacing_col", "real", lambda ds: _pair(ds.get("ImagerPixelSpacing"), 1)),
    ("Rows", "integer", lambda ds: ds.get("Rows")),
    ("Columns", "integer", lambda ds: ds.get("Columns")),
    ("BitsAllocated", "integer", lambda ds: ds.get("BitsAllocated")),
    ("BitsStored", "integer", lambda ds: ds.get("BitsStored")),
    ("PixelRepresentation", "integer", lambda ds: ds.get("PixelRepresentation")),
    ("PhotometricInterpretation", "text", lambda ds: _text(ds.get("PhotometricInterpretation"))),
    ("PresentationIntentType", "text", lambda ds: _text(ds.get("PresentationIntentType"))),
    ("PresentationLUTShape", "text", lambda ds: _text(ds.get("PresentationLUTShape"))),
    ("RescaleSlope", "real", lambda ds: _number(ds.get("RescaleSlope"))),
    ("RescaleIntercept", "real", lambda ds: _number(ds.get("RescaleIntercept"))),
    ("WindowCenter", "real", lambda ds: _number(ds.get("WindowCenter"))),
    ("WindowWidth", "real", lambda ds: _number(ds.get("WindowWidth"))),
)


def _column(name: str, column_type: str, description: str, *, required: bool = False) -> Column:
    return Column(name, column_type, required, description)


def _tag_description(name: str) -> str:
    keyword, _, part = name.partition("_")
    what = {
        "": "",
        "CodeMeaning": "'s first item's CodeMeaning",
        "row": ", first value (rows)",
        "col": ", second value",
    }
    return f"DICOM {keyword}{what[part]}, as written (acquisition holds the normalised value)."


HEADERS_TABLE = Table(
    "raw_dicom_headers",
    "One row per DICOM file read (xrh ingest dicom): typed tag columns named by DICOM keyword, and the header bytes.",
    (
        _column("path", "text", "The file, relative to the MIMIC-CXR project folder when inside it.", required=True),
        _column("dicom_id", "text", "The image's id: MIMIC-CXR's dicom_id from the path, else the SOPInstanceUID."),
        _column("study_id", "integer", "MIMIC-CXR study id from the path."),
        _column("subject_id", "integer", "MIMIC patient id from the path."),
        _column(
            "file_size", "integer", "File size in bytes (with the mtime, what makes a file unchanged).", required=True
        ),
        _column("file_mtime_ns", "integer", "Modification time, ns since 1970.", required=True),
        _column("TransferSyntaxUID", "text", "The file meta's transfer syntax."),
        *(_column(name, column_type, _tag_description(name)) for name, column_type, _ in TAG_COLUMNS),
        _column(
            "header_bytes", "blob", "The header as stored, up to the pixel data; empty over 64 KiB.", required=True
        ),
        _column("_source_file", "text", "The file (lineage).", required=True),
        _column("_loaded_at", "text", "When it was read (UTC).", required=True),
        # Declared after the first release: last, so an older table gets it by ALTER TABLE.
        _column("header_length", "integer", "Length of the header in bytes (NULL for rows read before it was kept)."),
    ),
    ("path",),
    source="raw",
)
REJECTS_TABLE = Table(
    "raw_dicom_rejects",
    "Files and entries under the DICOM folder that are not acceptable DICOM images, with the reason.",
    (
        _column("path", "text", "The file or entry.", required=True),
        _column("file_size", "integer", "Size in bytes (0 when it could not be read).", required=True),
        _column(
            "file_mtime_ns", "integer", "Modification time, ns since 1970 (0 when it could not be read).", required=True
        ),
        _column(
            "reason", "text", "Why it was not read: not DICOM, truncated, a symlink loop, a FIFO, ...", required=True
        ),
        _column("_loaded_at", "text", "When it was judged (UTC).", required=True),
    ),
    ("path",),
    source="raw",
)
TABLES = {table.name: table for table in (HEADERS_TABLE, REJECTS_TABLE)}
HEADER_COLUMNS = HEADERS_TABLE.column_names


@dataclass(frozen=True)
class FileEntry:
    """An entry found by the walk: its absolute path, the path stored in the warehouse, size and mtime, and why it
    cannot be read (``problem``; None for a regular file)."""

    absolute: str
    stored: str
    size: int
    mtime_ns: int
    problem: str | None = None


class Rejected(Exception):
    """A file that is not an acceptable DICOM image; the message is the reason stored in ``raw_dicom_rejects``."""


def _non_dicom_reason(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "not DICOM: gzip-compressed data (decompress it first)"
    if head[:4] == b"PK\x03\x04":
        return "not DICOM: a zip archive"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "not DICOM: plain text"
    return "not DICOM: no 'DICM' marker after the preamble and no readable data elements"


def _read_dataset(source: io.BufferedIOBase, head: bytes, *, defer: bool) -> tuple[pydicom.Dataset, int]:
    """The dataset in ``source`` up to the pixel data, and where it stopped; raises :class:`Rejected` for non-DICOM.

    ``defer`` leaves values longer than ``DEFER_BYTES`` unread (pydicom reads them from the file when asked for).
    """
    options = {"stop_before_pixels": True, "defer_size": DEFER_BYTES if defer else None}
    try:
        ds = pydicom.dcmread(source, **options)
    except InvalidDicomError:
        source.seek(0)
        ds = pydicom.dcmread(source, force=True, **options)  # no preamble, or not DICOM at all
        if not any(tag in ds for tag in REQUIRED_TAGS):
            raise Rejected(_non_dicom_reason(head)) from None
    return ds, source.tell()


@dataclass(frozen=True)
class _Header:
    """A parsed header: the dataset, its length in bytes, the bytes when they fit in ``HEAD_BYTES`` (else empty), and
    the first 12 bytes after it (the pixel data element's tag, VR and length, when present)."""

    dataset: pydicom.Dataset
    length: int
    raw: bytes
    next_element: bytes


def _parse(entry: FileEntry) -> _Header:
    """Parse a file's header; raises :class:`Rejected`.

    The first ``HEAD_BYTES`` are parsed from memory, once; only when the parse ran to the end of them in a longer file
    (a header longer than ``HEAD_BYTES``, or no pixel data) is the file parsed again from disk, with long values left
    unread, so a file with megabytes of private elements costs no more memory than a plain one.
    """
    try:
        with open(entry.absolute, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            more = entry.size > len(head)
            try:
                ds, length = _read_dataset(io.BytesIO(head), head, defer=False)
                complete = not more or length < len(head)
            except Rejected:
                raise
            except Exception:
                if not more:
                    raise
                complete = False
            if not complete:
                handle.seek(0)
                ds, length = _read_dataset(handle, head, defer=True)
            next_element = head[length : length + 12]
            if len(next_element) < 12 and more:
                handle.seek(length)
                next_element = handle.read(12)
    except Rejected:
        raise
    except Exception as error:
        raise Rejected(f"cannot be parsed: {type(error).__name__}: {error}") from None
    return _Header(ds, length, head[:length] if length <= len(head) else b"", next_element)


def _check_pixel_data(entry: FileEntry, header: _Header) -> None:
    """Reject a file whose pixel data is missing or shorter than its element says (a truncated file)."""
    ds = header.dataset
    transfer_syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return  # the dataset is deflated; its length cannot be checked without inflating it
    element = header.next_element
    if len(element) < 8 or element[:4] != _PIXEL_DATA_TAG:
        if entry.size <= header.length + 8:
            remaining = entry.size - header.length
            raise Rejected(f"truncated or no pixel data: the file ends {remaining} bytes after the header")
        raise Rejected("no pixel data element after the header")
    explicit = element[4:6] in (b"OB", b"OW", b"OF", b"UN")
    length = struct.unpack("<I", element[8:12] if explicit else element[4:8])[0]
    value_start = header.length + (12 if explicit else 8)
    if length == 0xFFFFFFFF:
        with open(entry.absolute, "rb") as handle:
            handle.seek(max(entry.size - 8, 0))
            if handle.read(8) != _SEQUENCE_DELIMITER:
                raise Rejected("truncated: encapsulated pixel data has no sequence delimiter at the end of the file")
    elif entry.size < value_start + length:
        raise Rejected(f"truncated: pixel data needs {length} bytes, the file has {entry.size - value_start}")


def read_file(entry: FileEntry) -> tuple[str, tuple]:
    """``("header", row)`` for a good file, ``("reject", (path, size, mtime, reason))`` otherwise. Never raises.

    A header row holds the file columns, the typed tag columns, the header bytes and the header's length.
    """
    if entry.problem is not None:
        return "reject", (entry.stored, entry.size, entry.mtime_ns, entry.problem)
    try:
        header = _parse(entry)
        ds = header.dataset
        missing = [tag for tag in REQUIRED_TAGS if tag not in ds]
        if missing:
            raise Rejected(f"missing required tags: {', '.join(missing)}")
        _check_pixel_data(entry, header)
        match = MIMIC_PATH.search(entry.stored)
        file_values = (
            entry.stored,
            match["dicom"] if match else _text(ds.get("SOPInstanceUID")),  # the image's identity, here only
            int(match["study"]) if match else None,
            int(match["subject"]) if match else None,
            entry.size,
            entry.mtime_ns,
            _text(ds.file_meta.get("TransferSyntaxUID")) if hasattr(ds, "file_meta") else None,
        )
        tag_values = tuple(extract(ds) for _, _, extract in TAG_COLUMNS)
        return "header", file_values + tag_values + (header.raw, header.length)
    except Rejected as reason:
        return "reject", (entry.stored, entry.size, entry.mtime_ns, str(reason))
    except Exception as error:  # anything pydicom raises while decoding values
        reason = f"cannot be parsed: {type(error).__name__}: {error}"
        return "reject", (entry.stored, entry.size, entry.mtime_ns, reason)


def read_files(entries: list[FileEntry]) -> list[tuple[str, tuple]]:
    return [read_file(entry) for entry in entries]


def walk(root: Path, *, stored_relative_to: Path | None, dcm_only: bool) -> Iterator[FileEntry]:
    """Every regular file under ``root`` (any depth, any name; only ``*.dcm`` when ``dcm_only``), in sorted order.

    Symlinks are followed, each folder walked once (a link back up the tree is a loop, reported once). What cannot be
    used (a loop, a broken link, a FIFO, socket or device, a folder that cannot be listed) comes as an entry with a
    ``problem``, which becomes a row of ``raw_dicom_rejects``; it never stops the walk, and is never opened (a FIFO
    would block). Partial downloads (``*.part``) are skipped. Paths are stored relative to ``stored_relative_to`` when
    the file lies under it (the MIMIC-CXR project folder, so they read like ``cxr-record-list.path``), otherwise as
    absolute paths.
    """
    base = str(stored_relative_to.resolve()) + os.sep if stored_relative_to else None

    def entry(path: str, status: os.stat_result | None, problem: str | None = None) -> FileEntry:
        stored = path[len(base) :] if base and path.startswith(base) else path
        return FileEntry(path, stored, status.st_size if status else 0, status.st_mtime_ns if status else 0, problem)

    walked: set[tuple[int, int]] = set()
    stack = [str(root.resolve())]
    while stack:
        folder = stack.pop()
        try:
            status = os.stat(folder)
            if (status.st_dev, status.st_ino) in walked:
                yield entry(folder, status, "symlink loop: this folder was already walked through another path")
                continue
            walked.add((status.st_dev, status.st_ino))
            with os.scandir(folder) as listing:
                items = sorted(listing, key=lambda item: item.name)
        except OSError as error:
            yield entry(folder, None, f"folder cannot be listed ({error.strerror}): check that it is readable")
            continue
        folders, files = [], []
        for item in items:
            try:
                status = item.stat()  # follows symlinks
            except OSError as error:
                yield entry(item.path, None, f"broken symlink or symlink loop ({error.strerror})")
                continue
            if stat.S_ISDIR(status.st_mode):
                folders.append(item.path)
            elif (dcm_only and not item.name.endswith(".dcm")) or item.name.endswith(".part"):
                continue
            elif not stat.S_ISREG(status.st_mode):
                yield entry(item.path, status, f"{file_kind(status.st_mode)}, not a regular file: skipped unopened")
            else:
                files.append(entry(item.path, status))
        stack.extend(reversed(folders))  # popped in sorted order
        yield from files


@dataclass
class DicomIngestSummary:
    scanned: int = 0
    unchanged: int = 0
    headers: int = 0
    rejects: int = 0
    removed: int = 0


class RemovalsRefused(RuntimeError):
    """The walk lost too many of the files it knew (an unmounted or half-copied disk?); nothing was changed."""


def ensure_tables(conn: sqlite3.Connection) -> None:
    """Create the raw tables; add columns that later releases appended (an older warehouse keeps its rows)."""
    with write_transaction(conn):
        for table in TABLES.values():
            ensure_table(conn, table)
        # Rows read before files outside the MIMIC tree were given their SOPInstanceUID as dicom_id.
        conn.execute("update raw_dicom_headers set dicom_id = SOPInstanceUID where dicom_id is null")


def _write_batch(conn: sqlite3.Connection, results: list[tuple[str, tuple]], loaded_at: str) -> None:
    # A header row ends with (header bytes, header length); the lineage columns stand between them (see HEADER_COLUMNS).
    headers = [row[:-1] + (row[0], loaded_at, row[-1]) for kind, row in results if kind == "header"]
    rejects = [row + (loaded_at,) for kind, row in results if kind == "reject"]
    with write_transaction(conn):
        conn.executemany(
            f"insert or replace into raw_dicom_headers values ({', '.join('?' * len(HEADER_COLUMNS))})", headers
        )
        conn.executemany("delete from raw_dicom_rejects where path = ?", [(row[0],) for row in headers])
        conn.executemany("insert or replace into raw_dicom_rejects values (?, ?, ?, ?, ?)", rejects)
        conn.executemany("delete from raw_dicom_headers where path = ?", [(row[0],) for row in rejects])


def _refuse_mass_removal(root: Path, known_here: int, vanished: int, found: int) -> None:
    """Raise :class:`RemovalsRefused` when the walk found nothing it knew, or lost more than ``MAX_REMOVED_SHARE``."""
    if vanished and (found == 0 or vanished > MAX_REMOVED_SHARE * known_here):
        raise RemovalsRefused(
            f"{root}: {vanished:,} of the {known_here:,} files known under it are gone"
            f"{' (the folder is empty)' if found == 0 else ''}; is the disk mounted and complete? Nothing was changed. "
            "If the files were removed on purpose, run again with --allow-removals."
        )


def _read_in_batches(
    todo: list[FileEntry], workers: int, map_batches: BatchMapper | None
) -> Iterator[list[tuple[str, tuple]]]:
    """Results of :func:`read_files` over ``todo``, batch by batch and in order, read where the caller chose."""
    if map_batches is not None:
        yield from map_batches(read_files, batches_of(todo, FILES_PER_REMOTE_TASK))
        return
    chunks = batches_of(todo, FILES_PER_TASK)
    if workers > 1 and len(chunks) > 1:
        with worker_pool(workers) as executor:
            yield from ordered_results(partial(executor.submit, read_files), chunks, ahead=2 * workers)
    else:
        yield from map(read_files, chunks)


def ingest_dicom_headers(
    conn: sqlite3.Connection,
    root: Path,
    *,
    stored_relative_to: Path | None = None,
    dcm_only: bool = False,
    workers: int = 1,
    files_per_commit: int = FILES_PER_COMMIT,
    map_batches: BatchMapper | None = None,
    allow_removals: bool = False,
) -> DicomIngestSummary:
    """Bring ``raw_dicom_headers`` and ``raw_dicom_rejects`` up to date with the files under ``root``.

    New and changed files are read in batches of ``FILES_PER_TASK`` by ``workers`` processes, or by ``map_batches``
    when given (it maps :func:`read_files` over batches of ``FILES_PER_REMOTE_TASK`` elsewhere, e.g. on a Dask
    cluster); rows of files that vanished from under ``root`` are removed; everything else is left as it is. Only this
    process writes to the warehouse.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder.
    RemovalsRefused
        The walk found none of the files known under ``root``, or lost more than ``MAX_REMOVED_SHARE`` of them, and
        ``allow_removals`` is false. Nothing was written.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder {root} does not exist: check the path (and that its disk is mounted)")
    ensure_tables(conn)
    summary = DicomIngestSummary()
    known = dict(
        (
            (path, (size, mtime))
            for path, size, mtime in conn.execute(
                "select path, file_size, file_mtime_ns from raw_dicom_headers"
                " union all select path, file_size, file_mtime_ns from raw_dicom_rejects"
            )
        )
    )
    entries = list(walk(root, stored_relative_to=stored_relative_to, dcm_only=dcm_only))
    summary.scanned = len(entries)
    todo = [entry for entry in entries if known.get(entry.stored) != (entry.size, entry.mtime_ns)]
    summary.unchanged = summary.scanned - len(todo)

    resolved_root = str(root.resolve())
    base = str(stored_relative_to.resolve()) + os.sep if stored_relative_to else None
    prefix = (resolved_root[len(base) :] if base and resolved_root.startswith(base) else resolved_root) + os.sep
    present = {entry.stored for entry in entries}
    known_here = [path for path in known if path.startswith(prefix)]
    vanished = [(path,) for path in known_here if path not in present]
    if not allow_removals:
        _refuse_mass_removal(root, len(known_here), len(vanished), len(present & set(known_here)))
    if vanished:
        with write_transaction(conn):
            conn.executemany("delete from raw_dicom_headers where path = ?", vanished)
            conn.executemany("delete from raw_dicom_rejects where path = ?", vanished)
        summary.removed = len(vanished)

    loaded_at = timestamp_now()
    pending: list[tuple[str, tuple]] = []
    results = (result for batch in _read_in_batches(todo, workers, map_batches) for result in batch)
    for result in track(results, len(todo), "reading DICOM headers", unit="files"):
        pending.append(result)
        if len(pending) >= files_per_commit:
            _write_batch(conn, pending, loaded_at)
            pending.clear()
    if pending:
        _write_batch(conn, pending, loaded_at)
    counts = dict(
        conn.execute(
            "select 'headers', count(*) from raw_dicom_headers"
            " union all select 'rejects', count(*) from raw_dicom_rejects"
        ).fetchall()
    )
    summary.headers, summary.rejects = counts["headers"], counts["rejects"]
    return summary
