"""Mapping a function over batches of work: in this process by default, elsewhere (a Dask cluster, through the flows)
when a job is handed another mapper. Only the caller writes to the warehouse; the function only reads and computes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

BatchMapper = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]


def in_this_process(function: Callable[[Any], Any], batches: list[Any]) -> Iterable[Any]:
    """The default mapper: one batch after the other, results in order."""
    return map(function, batches)


def batches_of(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter)."""
    return [items[start : start + size] for start in range(0, len(items), size)]
