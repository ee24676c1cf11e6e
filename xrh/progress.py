"""Progress for long work: a rich progress bar on a terminal, periodic counts in logs otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
LOG_EVERY_SECONDS = 10.0


def track(items: Iterable[T], total: int, description: str, *, unit: str = "items") -> Iterator[T]:
    """Yield ``items``, showing how many of ``total`` are done and the rate.

    On a terminal this is a rich progress bar; otherwise (CI, log files) one line every ``LOG_EVERY_SECONDS`` and a
    final line, written to standard error.
    """
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= LOG_EVERY_SECONDS:
            last = now
            print(f"{description}: {done}/{total} {unit} ({done / (now - start):.1f}/s)", file=sys.stderr, flush=True)
    elapsed = max(time.monotonic() - start, 1e-9)
    print(
        f"{description}: {done}/{total} {unit} in {elapsed:.1f} s ({done / elapsed:.1f}/s)", file=sys.stderr, flush=True
    )
