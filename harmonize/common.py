"""What every harmonization method shares: the body's histogram, fast integer histograms, parameter checks.

Lookup-table methods return an integer image in its own dtype (rounded, clipped) and anything else as float32
(:func:`output_values`); Fourier methods always return float32. Fitted parameters are plain dicts of numpy arrays and
floats (no objects), so they can be stored in the warehouse as JSON and reloaded exactly (:func:`params_to_json`,
:func:`params_from_json`).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

Params = dict[str, np.ndarray | float | int | str]
_THREADS = 2


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_THREADS)


# Background is the darkest few percent of the value range: padding, electronic shutters and direct exposure. A
# two-class (Otsu) split would not do on chest radiographs: it separates the lungs from the mediastinum, not the body
# from the air, and would leave the lungs out.
BACKGROUND_FRACTION = 0.02


def _body_threshold(values: np.ndarray, counts: np.ndarray) -> float:
    """The value below which a pixel is background, from the histogram: 2% of the way up the robust range."""
    low = float(values[np.argmax(counts > 0)])
    high = float(weighted_quantiles(values, counts, np.array([0.999]))[0])
    return low + BACKGROUND_FRACTION * max(high - low, 0.0)


def _bincount(values: np.ndarray, length: int) -> np.ndarray:
    """Counts of small non-negative integers. numpy's bincount first copies the values to 64-bit integers, which is
    most of its time; torch counts 16-bit values as they are, so values below 2**15 go through torch."""
    if values.dtype.itemsize <= 2 and length <= 1 << 15:
        import torch  # here, not at import: the command line and the Dask workers' start-up stay light

        flat = torch.from_numpy(np.ascontiguousarray(values).reshape(-1).view(np.int16))
        return torch.bincount(flat, minlength=length).numpy()
    return np.bincount(values.reshape(-1), minlength=length)


def integer_histogram(image: np.ndarray, *, step: int = 1) -> np.ndarray:
    """Counts of each value of an unsigned-integer image (or of every ``step``-th pixel in each direction).

    The work is split over two threads, which is where a 2048x2048 histogram spends its time.
    """
    if image.dtype.kind != "u":
        raise ValueError(f"integer_histogram needs an unsigned integer image, got {image.dtype}")
    length = int(image.max()) + 1
    view = image[::step, ::step] if step > 1 else image
    halves = np.array_split(view, _THREADS, axis=0)
    return np.sum(list(_pool().map(lambda part: _bincount(part, length), halves)), axis=0)


def in_parallel(work, rows: int) -> None:
    """Run ``work(row_slice)`` on the two halves of ``rows`` rows in two threads (numpy releases the GIL)."""
    middle = rows // 2
    list(_pool().map(work, (slice(0, middle), slice(middle, rows))))


def output_values(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The dtype rule of every method: an integer image comes back in its own dtype (rounded and clipped to the dtype's
    range), anything else as float32."""
    if like.dtype.kind in "ui":
        limits = np.iinfo(like.dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(like.dtype)
    return values.astype(np.float32, copy=False)


def apply_lookup(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[image]`` for an integer image, gathered in two threads (``table`` converted by :func:`output_values`)."""
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
