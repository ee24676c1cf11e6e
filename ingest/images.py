"""From a DICOM file to a float image ready for analysis, and a cache of the results.

:func:`preprocess` is the one way pixels enter the ML and harmonization jobs:

1. decode the stored values (uncompressed, RLE, deflate with numpy; JPEG 2000, JPEG Lossless and JPEG-LS with the
   pylibjpeg decoders) and apply the modality LUT (RescaleSlope / RescaleIntercept);
2. MONOCHROME1 is inverted (``max - value``), so that higher always means denser, as on MONOCHROME2 images;
3. windowing to [0, 1]: ``percentile`` (default) maps the 0.5th and 99.5th percentiles of the image to 0 and 1 and
   clips, which ignores a few outlier pixels (burned-in markers, dead pixels); ``minmax`` uses the extremes (the
   original study's choice); ``equalize`` adds histogram equalization after windowing (also the original study's);
4. resize to ``size`` x ``size`` keeping the aspect ratio: the longer side becomes ``size`` (box-filtered, so noise is
   averaged rather than aliased) and the shorter side is padded with zeros, centred.

:class:`ImageCache` stores each result once per (dicom_id, preprocessing, harmonization) as a 16-bit ``.npy`` file, so
training epochs, feature extraction and the harmonization benchmark read small analysis images and never decode a
DICOM twice; :func:`fill_cache` fills it in batches over worker processes, one image in memory per worker.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut

from xrh.batches import BatchMapper, batches_of, in_this_process
from xrh.files import write_bytes_atomic
from xrh.progress import track

WINDOWS = ("percentile", "minmax")


@dataclass(frozen=True)
class Preprocessing:
    """How a DICOM becomes an analysis image; its :meth:`key` names the cache folder."""

    size: int = 224
    window: str = "percentile"
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    equalize: bool = False

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {self.low_percentile}, {self.high_percentile}"
            )

    def key(self) -> str:
        """A short, stable name for these parameters."""
        text = json.dumps(asdict(self), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        return f"s{self.size}-{self.window}{'-eq' if self.equalize else ''}-{digest}"


def presentation_values(dataset: pydicom.Dataset) -> np.ndarray:
    """Pixel values after the modality LUT, as float32, with MONOCHROME1 inverted so that higher means denser."""
    try:
        stored = dataset.pixel_array
    except Exception as error:
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown transfer syntax")
        name = getattr(dataset, "filename", "dataset")
        raise ValueError(f"{name}: pixel data cannot be decoded ({syntax}): {error}") from error
    values = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(
            f"{getattr(dataset, 'filename', 'dataset')}: expected one grayscale frame, got shape {values.shape}"
        )
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        values = values.max() - values
    return values


def load_values(path: Path) -> np.ndarray:
    """Presentation values of a DICOM file, as uint16 when they are integers in range: what the harmonization methods
    take (their lookup-table fast path) and what the cache preprocesses."""
    values = presentation_values(pydicom.dcmread(path))
    if values.min() >= 0 and values.max() <= 65535 and np.array_equal(values, np.round(values)):
        return values.astype(np.uint16)
    return values


def window(values: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Map to [0, 1] by percentiles or extremes (see the module docstring), then optionally equalize."""
    if preprocessing.window == "minmax":
        low, high = float(values.min()), float(values.max())
    else:
        low, high = np.percentile(values, [preprocessing.low_percentile, preprocessing.high_percentile])
    scaled = np.clip((values - low) / max(float(high - low), 1e-6), 0.0, 1.0).astype(np.float32)
    if preprocessing.equalize:
        counts, edges = np.histogram(scaled, bins=256, range=(0.0, 1.0))
        cdf = np.cumsum(counts).astype(np.float32)
        cdf /= cdf[-1]
        scaled = np.interp(scaled, edges[1:], cdf).astype(np.float32)
    return scaled


def resize_longer_side(image: np.ndarray, size: int) -> np.ndarray:
    """float32, resized keeping the aspect ratio so the longer side is ``size`` (box-filtered: noise is averaged, not
    aliased)."""
    rows, cols = image.shape
    scale = size / max(rows, cols)
    new_rows, new_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize(
        (new_cols, new_rows), Image.Resampling.BOX
    )
    return np.asarray(resized)


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """:func:`resize_longer_side`, then zero-pad the shorter side, centred."""
    resized = resize_longer_side(image, size)
    new_rows, new_cols = resized.shape
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_rows) // 2, (size - new_cols) // 2
    out[top : top + new_rows, left : left + new_cols] = resized
    return out


def analysis_image(values: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """The analysis image of presentation values: float32, ``size`` x ``size``, values in [0, 1]."""
    return fit_square(window(values.astype(np.float32, copy=False), preprocessing), preprocessing.size)


def preprocess(dataset: pydicom.Dataset, preprocessing: Preprocessing) -> np.ndarray:
    """The analysis image of a dataset."""
    return analysis_image(presentation_values(dataset), preprocessing)


class ImageCache:
    """Preprocessed images on disk: ``<cache_dir>/images/<preprocessing key>/<dicom_id[:2]>/<dicom_id>.npy``, or under
    ``<preprocessing key>+<variant>`` for images transformed before preprocessing (a harmonization method and its
    fitted parameters).

    Images are stored as uint16 (value x 65535), written atomically, and read back as float32.
    """

    def __init__(self, cache_dir: Path, preprocessing: Preprocessing, variant: str = "") -> None:
        self.preprocessing = preprocessing
        self.folder = Path(cache_dir) / "images" / (preprocessing.key() + (f"+{variant}" if variant else ""))

    def path_of(self, dicom_id: str) -> Path:
        return self.folder / dicom_id[:2] / f"{dicom_id}.npy"

    def __contains__(self, dicom_id: str) -> bool:
        return self.path_of(dicom_id).exists()

    def load(self, dicom_id: str) -> np.ndarray:
        return np.load(self.path_of(dicom_id)).astype(np.float32) / 65535.0

    def store(self, dicom_id: str, image: np.ndarray) -> None:
        encoded = io.BytesIO()
        np.save(encoded, np.rint(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16))
        write_bytes_atomic(self.path_of(dicom_id), encoded.getvalue())


ValuesTransform = Callable[[np.ndarray], np.ndarray]


def _cache_batch(
    cache: ImageCache, transform: ValuesTransform | None, images: list[tuple[str, Path]]
) -> list[str | None]:
    """Worker: cache each image; an error message instead of raising, so one bad file never stops a run."""
    outcomes = []
    for dicom_id, dicom_path in images:
        try:
            values = load_values(dicom_path)
            if transform is not None:
                values = transform(values)
            cache.store(dicom_id, analysis_image(values, cache.preprocessing))
            outcomes.append(None)
        except Exception as error:
            outcomes.append(f"{dicom_path}: {error}")
    return outcomes


def fill_cache(
    cache: ImageCache,
    images: list[tuple[str, Path]],
    *,
    transform: ValuesTransform | None = None,
    map_batches: BatchMapper = in_this_process,
) -> tuple[int, list[str]]:
    """Cache every ``(dicom_id, path)`` not cached yet, in batches mapped by ``map_batches`` (local processes, a Dask
    cluster); ``transform`` (picklable) maps the presentation values first. Returns (newly cached, errors)."""
    todo = [(dicom_id, path) for dicom_id, path in images if dicom_id not in cache]
    batches = batches_of(todo)
    done = map_batches(partial(_cache_batch, cache, transform), batches)
    outcomes = [outcome for batch in track(done, len(batches), "caching images", unit="batches") for outcome in batch]
    errors = [message for message in outcomes if message]
    return len(todo) - len(errors), errors
