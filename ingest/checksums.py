"""File digests shared by the downloader (SHA256SUMS.txt checks) and the CSV loader (skip unchanged files)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file as lowercase hex, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
