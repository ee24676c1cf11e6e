"""Files the project writes appear whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to ``<path>.<pid>.part`` and rename into place, so a reader never sees a half-written file and two
    processes writing the same file never share a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_bytes(data)
    os.replace(part, path)
