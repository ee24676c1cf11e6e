"""From a DICOM file to a float image ready for analysis, and a cache of the results.

:func:`preprocess` is the one way pixels enter the ML and harmonization jobs:

1. decode the stored values (uncompressed, RLE, deflate with numpy; JPEG 2000, JPEG Lossless and JPEG-LS with the
   pylibjpeg decoders) and apply the modality LUT (RescaleSlope / RescaleIntercept);
2. MONOCHROME1 is inverted (``max - value``), so that higher always means denser, as on MONOCHROME2 images;
3. windowing to [0, 1]: ``percentile`` (default) maps the 0.5th and 99.5th percentiles of the image to 0 and 1 and
   clips, which ignores a few outlier pixels (burned-in markers, dead pixels); ``minmax`` uses the extremes (the
   original study's choice);
4. resize to ``size`` x ``size`` keeping the aspect ratio: the longer side becomes ``size`` (box-filtered, so noise is
   averaged rather than aliased) and the shorter side is padded with zeros, centred; ``equalize`` adds histogram
   equalization of the resized image, before the padding (also the original study's choice).

With ``field_mm`` set, steps 3 and 4 work on a centred square of that many millimetres instead of the whole frame (the
spacing from PixelSpacing, else ImagerPixelSpacing): the same anatomy at the same scale from every scanner, without the
detector's matrix, the collimation or the padding, which a classifier can otherwise read the scanner from (Zech et al.,
PLoS Med. 15 (2018) e1002683). Where the detector is smaller than the field, the rest is zero.

:class:`ImageCache` stores each result once per (dicom_id, preprocessing, harmonization) as a 16-bit ``.npy`` file, so
training epochs, feature extraction and the harmonization benchmark read small analysis images and never decode a
DICOM twice; :func:`fill_cache` fills it in batches over worker processes, one image in memory per worker.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
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
# Part of every cache key: raise it when a change to this module changes what a preprocessing produces, so that no
# cache made by the old code is read as the new code's.
PREPROCESSING_VERSION = 3


@dataclass(frozen=True)
class Preprocessing:
    """How a DICOM becomes an analysis image; its :meth:`key` names the cache folder."""

    size: int = 224
    window: str = "percentile"
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    equalize: bool = False
    field_mm: float = 0.0  # 0: the whole frame

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {self.low_percentile}, {self.high_percentile}"
            )
        if self.field_mm < 0:
            raise ValueError(f"field_mm must be 0 (the whole frame) or a size in mm, got {self.field_mm}")

    def key(self) -> str:
        """A short, stable name for these parameters."""
        text = json.dumps({**asdict(self), "version": PREPROCESSING_VERSION}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        field = f"-f{self.field_mm:g}mm" if self.field_mm else ""
        return f"s{self.size}-{self.window}{'-eq' if self.equalize else ''}{field}-{digest}"


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


def pixel_spacing_mm(dataset: pydicom.Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing (projection radiographs often carry only the
    detector's); None when neither holds two positive numbers."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            row, column = (float(v) for v in dataset.get(keyword) or ())
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def stored_values(dataset: pydicom.Dataset) -> np.ndarray:
    """Presentation values, as uint16 when they are integers in range: what the harmonization methods take (their
    lookup-table fast path) and what the cache preprocesses."""
    values = presentation_values(dataset)
    if values.min() >= 0 and values.max() <= 65535 and np.array_equal(values, np.round(values)):
        return values.astype(np.uint16)
    return values


def load_values(path: Path) -> np.ndarray:
    """:func:`stored_values` of a DICOM file."""
    return stored_values(pydicom.dcmread(path))


def window(values: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Map to [0, 1] by percentiles or extremes (see the module docstring)."""
    if preprocessing.window == "minmax":
        low, high = float(values.min()), float(values.max())
    else:
        low, high = np.percentile(values, [preprocessing.low_percentile, preprocessing.high_percentile])
    return np.clip((values - low) / max(float(high - low), 1e-6), 0.0, 1.0).astype(np.float32)


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalization by ranks: pixel k of n in increasing order becomes (k + 0.5) / n, so the histogram is
    exactly flat and any monotone tone curve applied before gives the same image (a binned histogram would merge the
    values a steep curve crowds together). Equal values take consecutive ranks in a fixed pseudo-random order: how
    many pixels happen to share a value (averages of integers coincide) is then no statistic of the image, and a
    clipped region gets no ramp (as ordering ties by position would draw)."""
    tie_order = np.random.default_rng(0).permutation(image.size)
    ranks = np.empty(image.size, dtype=np.float64)
    ranks[np.lexsort((tie_order, image.ravel()))] = np.arange(image.size)
    return ((ranks + 0.5) / image.size).reshape(image.shape).astype(np.float32)


def _resize(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """float32, box-filtered to ``rows`` x ``cols`` (noise is averaged, not aliased)."""
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize(
        (cols, rows), Image.Resampling.BOX
    )
    return np.asarray(resized)


def resize_longer_side(image: np.ndarray, size: int) -> np.ndarray:
    """float32, resized keeping the aspect ratio so the longer side is ``size``."""
    rows, cols = image.shape
    scale = size / max(rows, cols)
    return _resize(image, max(1, round(rows * scale)), max(1, round(cols * scale)))


def centred_field(
    shape: tuple[int, int], spacing_mm: tuple[float, float], field_mm: float
) -> tuple[slice, slice, int, int]:
    """Where a centred ``field_mm`` square lies in an image of ``shape``: its rows and columns, and the field's size
    in pixels (larger than the image where the image is smaller than the field)."""
    frame_rows, frame_cols = (max(1, round(field_mm / s)) for s in spacing_mm)
    top, left = max(0, (shape[0] - frame_rows) // 2), max(0, (shape[1] - frame_cols) // 2)
    return slice(top, top + frame_rows), slice(left, left + frame_cols), frame_rows, frame_cols


def analysis_layout(
    shape: tuple[int, int], preprocessing: Preprocessing, spacing_mm: tuple[float, float] | None = None
) -> tuple[slice, slice, slice, slice]:
    """Where an image of ``shape`` meets its analysis image: the rows and columns of the image that are analysed (the
    centred field, or the whole frame), and the rows and columns of the analysis image that hold them (the rest is
    padding).

    Raises
    ------
    ValueError
        If a field in mm is asked for and there is no pixel spacing.
    """
    if not preprocessing.field_mm:
        rows, cols, frame_rows, frame_cols = slice(0, shape[0]), slice(0, shape[1]), max(shape), max(shape)
    elif spacing_mm is None:
        raise ValueError(
            f"no PixelSpacing or ImagerPixelSpacing: a {preprocessing.field_mm:g} mm field cannot be cut;"
            " leave the image out of the cohort, or analyse whole frames (`--field-mm 0`)"
        )
    else:
        rows, cols, frame_rows, frame_cols = centred_field(shape, spacing_mm, preprocessing.field_mm)
    size = preprocessing.size
    analysed = (len(range(shape[0])[rows]), len(range(shape[1])[cols]))
    content = [max(1, round(n * size / f)) for n, f in zip(analysed, (frame_rows, frame_cols), strict=True)]
    top, left = (size - content[0]) // 2, (size - content[1]) // 2
    return rows, cols, slice(top, top + content[0]), slice(left, left + content[1])


def analysis_image(
    values: np.ndarray, preprocessing: Preprocessing, spacing_mm: tuple[float, float] | None = None
) -> np.ndarray:
    """The analysis image of presentation values: float32, ``size`` x ``size``, values in [0, 1]; ``spacing_mm``
    (row, column) is needed when ``preprocessing.field_mm`` is set (:func:`analysis_layout`).

    Equalization comes after the resize, over the image's own pixels (not the padding), so that the analysis image's
    histogram is flat whatever the scanner: with equalization, no global statistic is left to tell scanners apart."""
    rows, cols, content_rows, content_cols = analysis_layout(values.shape, preprocessing, spacing_mm)
    values = values.astype(np.float32, copy=False)[rows, cols]
    size = preprocessing.size
    image = _resize(
        window(values, preprocessing), content_rows.stop - content_rows.start, content_cols.stop - content_cols.start
    )
    if preprocessing.equalize:
        image = equalize(image)
    out = np.zeros((size, size), dtype=np.float32)
    out[content_rows, content_cols] = image
    return out


def preprocess(dataset: pydicom.Dataset, preprocessing: Preprocessing) -> np.ndarray:
    """The analysis image of a dataset."""
    return analysis_image(presentation_values(dataset), preprocessing, pixel_spacing_mm(dataset))


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


# A transform of presentation values before preprocessing (a harmonization); it also gets the image's dataset, for
# transforms that depend on the acquisition.
ValuesTransform = Callable[[np.ndarray, pydicom.Dataset], np.ndarray]


def _cache_batch(
    caches: tuple[ImageCache, ...], transform: ValuesTransform | None, images: list[tuple[str, Path]]
) -> list[str | None]:
    """Worker: cache each image in every cache (one decode and one transform for all); an error message instead of
    raising, so one bad file never stops a run."""
    outcomes = []
    for dicom_id, dicom_path in images:
        try:
            dataset = pydicom.dcmread(dicom_path)
            values = stored_values(dataset)
            if transform is not None:
                values = transform(values, dataset)
            for cache in caches:
                cache.store(dicom_id, analysis_image(values, cache.preprocessing, pixel_spacing_mm(dataset)))
            outcomes.append(None)
        except Exception as error:
            outcomes.append(f"{dicom_path}: {error}")
    return outcomes


def fill_cache(
    cache: ImageCache | Sequence[ImageCache],
    images: list[tuple[str, Path]],
    *,
    transform: ValuesTransform | None = None,
    map_batches: BatchMapper = in_this_process,
) -> tuple[int, list[str]]:
    """Cache every ``(dicom_id, path)`` not cached yet, in batches mapped by ``map_batches`` (local processes, a Dask
    cluster); ``transform`` (picklable) maps the presentation values first. With several caches (analysis images of
    several preprocessings), each image is decoded once for all of them. Returns (newly cached, errors)."""
    caches = (cache,) if isinstance(cache, ImageCache) else tuple(cache)
    todo = [(dicom_id, path) for dicom_id, path in images if any(dicom_id not in c for c in caches)]
    batches = batches_of(todo)
    done = map_batches(partial(_cache_batch, caches, transform), batches)
    outcomes = [outcome for batch in track(done, len(batches), "caching images", unit="batches") for outcome in batch]
    errors = [message for message in outcomes if message]
    return len(todo) - len(errors), errors
