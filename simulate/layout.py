"""Writers of the PhysioNet file layout: gzip CSVs byte for byte reproducible, SHA256SUMS.txt (files written whole)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xrh.files import write_bytes_atomic

MIMICIV = Path("mimiciv/3.1")
MIMIC_CXR = Path("mimic-cxr/2.1.0")
MIMIC_CXR_JPG = Path("mimic-cxr-jpg/2.1.0")


def cxr_study_folder(subject_id: int, study_id: int) -> str:
    """``files/p10/p10000032/s50414267``: the MIMIC-CXR folder of one study (p-folder = first two digits)."""
    return f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}"


def csv_gz_bytes(header: Sequence[str], rows: Iterable[Mapping[str, object] | Sequence[object]]) -> bytes:
    """A gzip-compressed CSV: comma separated, header row, ``None`` as an empty field, ``\\n`` line ends.

    The gzip header carries no file name and a zero timestamp, so equal content gives equal bytes.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [row.get(column) for column in header] if isinstance(row, Mapping) else list(row)
        writer.writerow("" if value is None else value for value in values)
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
        compressed.write(text.getvalue().encode("utf-8"))
    return raw.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_sha256sums(project_root: Path, digests: Mapping[str, str]) -> Path:
    """Write ``SHA256SUMS.txt`` (``<hex> <relative path>`` per line, sorted by path) for a project folder."""
    lines = "".join(f"{digests[relative]} {relative}\n" for relative in sorted(digests))
    path = project_root / "SHA256SUMS.txt"
    write_bytes_atomic(path, lines.encode("utf-8"))
    return path


class ProjectWriter:
    """Writes the files of one PhysioNet project folder and remembers their digests for SHA256SUMS.txt."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.digests: dict[str, str] = {}

    def write(self, relative: str, data: bytes) -> None:
        write_bytes_atomic(self.root / relative, data)
        self.digests[relative] = sha256_hex(data)

    def record(self, relative: str, digest: str) -> None:
        """Remember the digest of a file written elsewhere (by a worker process)."""
        self.digests[relative] = digest

    def write_csv_gz(self, relative: str, header: Sequence[str], rows: Iterable) -> None:
        self.write(relative, csv_gz_bytes(header, rows))

    def finish(self) -> Path:
        return write_sha256sums(self.root, self.digests)
