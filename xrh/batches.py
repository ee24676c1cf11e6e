"""Mapping a function over batches of work: in this process, in local worker processes, or elsewhere (a Dask cluster,
through the flows) when a job is handed another mapper. Only the caller writes to the warehouse; the function only
reads, computes and writes files of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from xrh.processes import ordered_results, worker_pool

BatchMapper = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]

# Images per batch of an image step (decode, harmonize, preprocess, cache): at 0.05-0.3 s per 3.5 MP image and step,
# a batch is several seconds of work, so a Prefect task's 0.1-0.6 s of bookkeeping stays small.
IMAGES_PER_BATCH = 64


def in_this_process(function: Callable[[Any], Any], batches: list[Any]) -> Iterable[Any]:
    """One batch after the other, results in order."""
    return map(function, batches)


@contextmanager
def local_processes(workers: int, given: BatchMapper | None = None) -> Iterator[BatchMapper]:
    """A mapper over ``workers`` local processes (:func:`xrh.processes.worker_pool`), results in order and at most two
    batches per worker in flight, so memory stays bounded by the batches; one worker maps in this process. A mapper
    ``given`` by the caller (a flow's Dask mapper) is used as it is."""
    if given is not None or workers <= 1:
        yield given or in_this_process
        return
    with worker_pool(workers) as executor:
        yield lambda function, batches: ordered_results(partial(executor.submit, function), batches, ahead=2 * workers)


def batches_of(items: Sequence[Any], size: int = IMAGES_PER_BATCH) -> list[Sequence[Any]]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter)."""
    return [items[start : start + size] for start in range(0, len(items), size)]
