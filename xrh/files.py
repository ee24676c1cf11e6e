"""Files the project writes appear whole or not at all; files it reads are described when they are not files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a ``stat`` mode that is not a regular file's is, in words ("a FIFO (named pipe)", ...)."""
    return next((words for is_kind, words in _KINDS if is_kind(mode)), "a special file")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to ``<path>.<pid>.part`` and rename into place, so a reader never sees a half-written file and two
    processes writing the same file never share a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_bytes(data)
    os.replace(part, path)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file as lowercase hex, read in chunks (downloads, CSV loads, artifacts)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
