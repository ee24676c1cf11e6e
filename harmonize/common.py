"""What every harmonization method shares: the body's histogram, fast integer histograms, parameter checks, the thread
setting and the merging of fit summaries.

Lookup-table methods return an integer image in its own dtype (rounded, clipped) and anything else as float32
(:func:`output_values`); Fourier methods always return float32. Fitted parameters are plain dicts of numpy arrays and
floats (no objects), so they can be stored in the warehouse as JSON and reloaded exactly (:func:`params_to_json`,
:func:`params_from_json`).

Every method is fitted from per-image summaries (sufficient statistics: sums over images, with an ``"images"`` count)
that are merged pairwise, in any grouping, and finished into the parameters at the end (:mod:`harmonize.methods`); most
methods merge by adding key by key (:func:`add_summaries`). A fit therefore keeps one small summary in memory however
many images it reads, and workers can summarize batches of images to be merged afterwards.

Histograms, lookups and Fourier transforms run on :func:`threads` threads, one unless :func:`set_threads` says
otherwise: the safe choice when many worker processes share the machine.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

Params = dict[str, np.ndarray | float | int | str]

_threads = 1
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def threads() -> int:
    """The number of threads each histogram, lookup and Fourier transform uses (:func:`set_threads`; 1 by default)."""
    return _threads


def set_threads(count: int) -> None:
    """Use ``count`` threads (at least 1) for histograms, lookups and Fourier transforms from now on.

    The thread pool is replaced (the old one finishes what it was given and exits); with one thread no pool is used
    at all. Results do not depend on the count.

    Raises
    ------
    ValueError
        If ``count`` is not an integer of at least 1.
    """
    global _threads, _executor
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValueError(f"the thread count must be an integer of at least 1, got {count!r}")
    if count == _threads:
        return
    with _executor_lock:
        if _executor is not None:
            _executor.shutdown(wait=False)
        _executor, _threads = None, int(count)


def _forget_pool_after_fork() -> None:
    """A forked child has none of its parent's pool threads: it starts its own pool when it first needs one."""
    global _executor, _executor_lock
    _executor, _executor_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _map(work: Callable, parts: list) -> list:
    """``[work(part) for part in parts]``, on the thread pool when there are several parts and several threads."""
    global _executor
    if len(parts) < 2 or _threads == 1:
        return [work(part) for part in parts]
    with _executor_lock:  # submitted under the lock, so set_threads cannot shut the pool down in between
        if _executor is None:
            _executor = ThreadPoolExecutor(_threads, thread_name_prefix="harmonize")
        results = _executor.map(work, parts)
    return list(results)


def add_summaries(first: Params, second: Params) -> Params:
    """Merge two fit summaries by adding them key by key (the ``combine`` of every method whose summary is sums).

    Neither argument is changed. Addition is associative, so summaries of batches merge to the same parameters
    whatever the batching (up to floating-point rounding).

    Raises
    ------
    ValueError
        If the summaries have different keys, or arrays of different shapes under the same key.
    """
    if first.keys() != second.keys():
        raise ValueError(f"cannot merge summaries with different keys: {sorted(first)} and {sorted(second)}")
    for key, value in first.items():
        if np.shape(value) != np.shape(second[key]):
            raise ValueError(f"cannot merge summaries: {key!r} has shape {np.shape(value)} and {np.shape(second[key])}")
    return {key: value + second[key] for key, value in first.items()}


# Background is the darkest few percent of the value range: padding, electronic shutters and direct exposure. A
# two-class (Otsu) split would not do on chest radiographs: it separates the lungs from the mediastinum, not the body
# from the air, and would leave the lungs out.
BACKGROUND_FRACTION = 0.02


def _body_threshold(values: np.ndarray, counts: np.ndarray) -> float:
    """The value below which a pixel is background, from the histogram: 2% of the way up the robust range."""
    low = float(values[np.argmax(counts > 0)])
    high = float(weighted_quantiles(values, counts, np.array([0.999]))[0])
    return low + BACKGROUND_FRACTION * max(high - low, 0.0)


@cache
def _openmp() -> ThreadpoolController:
    """The OpenMP runtimes loaded with torch (made after torch is imported, so that its runtime is among them)."""
    from threadpoolctl import ThreadpoolController  # here, not at import, like torch

    return ThreadpoolController().select(user_api="openmp")


def _bincount(values: np.ndarray, length: int) -> np.ndarray:
    """Counts of small non-negative integers. numpy's bincount first copies the values to 64-bit integers, which is
    most of its time; torch counts 16-bit values as they are, so values below 2**15 go through torch.

    torch checks the values' minimum and maximum with OpenMP reductions on all its intra-op threads; on a busy machine
    (many worker processes) each waits for a scheduler time slice: 16-24 ms for a 2048x2048 image instead of 1.4 ms.
    The only threads here are :func:`threads`, so OpenMP is limited to one thread for the call (OpenMP's thread count
    belongs to the calling thread: other threads' torch work is not affected).
    """
    if values.dtype.itemsize <= 2 and length <= 1 << 15:
        import torch  # here, not at import: the command line and the Dask workers' start-up stay light

        flat = torch.from_numpy(np.ascontiguousarray(values).reshape(-1).view(np.int16))
        with _openmp().limit(limits=1):
            return torch.bincount(flat, minlength=length).numpy()
    return np.bincount(values.reshape(-1), minlength=length)


def integer_histogram(image: np.ndarray, *, step: int = 1) -> np.ndarray:
    """Counts of each value of an unsigned-integer image (or of every ``step``-th pixel in each direction).

    The rows are split over :func:`threads` threads, which is where a 2048x2048 histogram spends its time.
    """
    if image.dtype.kind != "u":
        raise ValueError(f"integer_histogram needs an unsigned integer image, got {image.dtype}")
    length = int(image.max()) + 1
    view = image[::step, ::step] if step > 1 else image
    parts = np.array_split(view, min(_threads, max(len(view), 1)), axis=0)
    return np.sum(_map(lambda part: _bincount(part, length), parts), axis=0)


def in_parallel(work: Callable[[slice], object], rows: int) -> None:
    """Run ``work(row_slice)`` on :func:`threads` consecutive parts of ``rows`` rows, one per thread (numpy releases
    the GIL)."""
    edges = np.linspace(0, rows, min(_threads, max(rows, 1)) + 1).astype(int)
    _map(work, [slice(start, stop) for start, stop in zip(edges[:-1], edges[1:], strict=True)])


def output_values(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The dtype rule of every method: an integer image comes back in its own dtype (rounded and clipped to the dtype's
    range), anything else as float32."""
    if like.dtype.kind in "ui":
        limits = np.iinfo(like.dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(like.dtype)
    return values.astype(np.float32, copy=False)


def apply_lookup(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[image]`` for an integer image, gathered on :func:`threads` threads (``table`` converted by
    :func:`output_values`)."""
    table = output_values(table, image)
    out = np.empty(image.shape, dtype=table.dtype)
    in_parallel(lambda rows: np.take(table, image[rows], out=out[rows]), image.shape[0])
    return out


def body_values(image: np.ndarray, *, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of the body's pixels: the image's histogram above the background threshold.

    For an integer image this needs no pixel mask at all: the body is a threshold on the value, so the body's
    histogram is the upper part of the image's histogram. Float images are binned (4096 bins).
    ``step`` takes the histogram from every step-th row and column.
    """
    values, counts = image_histogram(image, step=step)
    body = values > _body_threshold(values, counts)
    if not counts[body].any():  # a flat image: all of it is "body"
        return values[counts > 0], counts[counts > 0]
    return values[body], counts[body]


def image_histogram(image: np.ndarray, *, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts): every integer value for integer images, 4096 bins for float images."""
    if image.dtype.kind == "u":
        counts = integer_histogram(image, step=step)
        return np.arange(len(counts), dtype=np.float64), counts
    counts, edges = np.histogram(image[::step, ::step], bins=4096)
    return (edges[:-1] + edges[1:]) / 2, counts


def weighted_quantiles(values: np.ndarray, counts: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of a histogram (the smallest value whose cumulative share reaches each level)."""
    cdf = np.cumsum(counts, dtype=np.float64)
    cdf /= cdf[-1]
    return values[np.searchsorted(cdf, levels, side="left").clip(0, len(values) - 1)]


def check_image(image: np.ndarray) -> np.ndarray:
    """A 2-D image with finite values, or a ValueError saying what was wrong."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image has NaN or infinite values")
    return image


# The keys of a bone model (harmonize.bone) among the parameters of a method that reads one.
BONE_PREFIX = "bone."


def bone_model_of(params: Params) -> Params:
    """The bone model's arrays among a method's parameters (empty when it has none)."""
    return {key: value for key, value in params.items() if key.startswith(BONE_PREFIX)}


def params_to_json(params: Params) -> str:
    """Parameters as JSON: arrays become {'array': [...], 'dtype': ...}; floats keep every digit."""

    def encode(value):
        if isinstance(value, np.ndarray):
            return {"array": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
        if isinstance(value, np.generic):
            return value.item()
        return value

    return json.dumps({key: encode(value) for key, value in params.items()}, sort_keys=True)


def params_from_json(text: str) -> Params:
    def decode(value):
        if isinstance(value, dict) and "array" in value:
            return np.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"])
        return value

    return {key: decode(value) for key, value in json.loads(text).items()}
