"""Fourier-space harmonization: low-frequency amplitude replacement (FDA) and radial band-energy equalization.

``apply_fda`` keeps the image's phase and replaces the amplitude in the centred low-frequency square of half-width
``floor(beta * min(h, w))`` (of the image's own sides, not the padded ones) with the reference group's mean amplitude
(Yang and Soatto, "FDA: Fourier Domain Adaptation for Semantic Segmentation", CVPR 2020). It only reaches the lowest
frequencies: global tone and large-scale contrast. ``apply_band_equalization`` scales each radial frequency band so
its energy matches the reference group's, which also reaches noise texture and sharpening (the multi-band energy
normalization of Philipsen et al., "Localized energy-based normalization of medical images: application to chest
radiography", IEEE TMI 34, 2015, here global per band).

Spectra are taken with ``scipy.fft.rfft2`` in float32 on :func:`harmonize.common.threads` workers, of the image
mirrored at its bottom and right (symmetric padding: no edge step) to ``scipy.fft.next_fast_len(n, real=True)`` per
side (:func:`padded_shape`, :func:`pad_for_fft`); the inverse transform is cropped back to the image's shape. Sides
like 2539 (prime) cost several times more per pixel: a 3050x2539 round trip took 2.5-4x as long as padded to
3072x2560 (benchmarks/harmonize.py). The padding adds 1.7% to a side on average between 1000 and 4096 pixels, at most
6.7%. Fitting and applying pad alike. Amplitudes are stored per pixel (divided by the padded
pixel count) at frequencies in cycles per padded image, so references and targets of different matrix sizes but the
same field of view compare (to within their padding); band energies are per coefficient, per pixel, at frequencies in
cycles per pixel (the padded shape's frequency grid).

An electronic shutter's black border (:class:`ShutterBorder`: pixels at the image's minimum running in from its edges)
would be a step at the field's edge for every filter to ring on, inside the field and across the border: a frame-edge
cue a classifier reads at once. Every transform here is taken of the image with the border filled by the field's edge
values (each row's first and last exposed pixel carried outwards, then the first and last exposed rows), and the
border is put back as it was afterwards; an image without such a border is transformed as it is.

Both are fitted from per-image summaries: ``summarize_fda`` / ``combine_fda`` / ``finish_fda`` (the low-frequency
amplitude block; merging crops to the smaller block) and ``summarize_band_energies`` / ``finish_band_energies``
(merged with :func:`harmonize.common.add_summaries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft

from harmonize.common import Params, add_summaries, check_image, in_parallel, threads

BETA_MAX = 0.09
BAND_EDGES = np.array([0.0, 1 / 512, 1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 0.75])


def padded_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """The shape each image is padded to before its transform: each side to ``scipy.fft.next_fast_len(n, real=True)``
    (a product of 2, 3 and 5; at most a few percent longer for radiograph sizes)."""
    return fft.next_fast_len(shape[0], real=True), fft.next_fast_len(shape[1], real=True)


@dataclass(frozen=True)
class ShutterBorder:
    """An electronic shutter's border: the pixels at the image's minimum (``value``) that run in from its edges. The
    exposed field spans rows ``top`` to ``bottom`` and, in row ``r``, columns ``first[r]`` to ``last[r]``."""

    value: float
    top: int
    bottom: int
    first: np.ndarray
    last: np.ndarray

    def _runs(self, cols: int):
        """(row, first, last) of each exposed row with a left or right border run."""
        for r in range(self.top, self.bottom + 1):
            first, last = int(self.first[r]), int(self.last[r])
            if first > 0 or last < cols - 1:
                yield r, first, last

    def fill(self, out: np.ndarray, shape: tuple[int, int]) -> None:
        """Replace the border in ``out``'s top-left ``shape`` with the field's edge values, in place."""
        rows, cols = shape
        for r, first, last in self._runs(cols):
            out[r, :first] = out[r, first]
            out[r, last + 1 : cols] = out[r, last]
        out[: self.top, :cols] = out[self.top, :cols]
        out[self.bottom + 1 : rows, :cols] = out[self.bottom, :cols]

    def restore(self, out: np.ndarray) -> None:
        """Put the border back in ``out`` (the image's shape), in place."""
        rows, cols = out.shape
        for r, first, last in self._runs(cols):
            out[r, :first] = self.value
            out[r, last + 1 :] = self.value
        out[: self.top] = self.value
        out[self.bottom + 1 :] = self.value


def _first_not_at(image: np.ndarray, lowest: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first column not at ``lowest`` and whether the row has one. Only a strip in from the left is
    read (64 columns, then 512, then the whole row, for the rows whose run is longer): shutters are narrow."""
    rows, cols = image.shape
    first = np.zeros(rows, dtype=np.intp)
    pending = np.arange(rows)
    for width in (64, 512, cols):
        found = image[pending, : min(width, cols)] != lowest
        has = found.any(axis=1)
        first[pending[has]] = found.argmax(axis=1)[has]
        pending = pending[~has]
        if pending.size == 0 or width >= cols:
            break
    exposed = np.ones(rows, dtype=bool)
    exposed[pending] = False
    return first, exposed


def shutter_border(image: np.ndarray) -> ShutterBorder | None:
    """The image's shutter border: the runs of its edges' lowest value, when that is the image's minimum, in from
    its sides (top and bottom rows wholly at it included); None when there is none (or every pixel is at it)."""
    lowest = image.min()
    edges = (image[0], image[-1], image[:, 0], image[:, -1])
    if not any((edge == lowest).any() for edge in edges):
        return None
    first, exposed = _first_not_at(image, lowest)
    last = image.shape[1] - 1 - _first_not_at(image[:, ::-1], lowest)[0]
    exposed_rows = np.flatnonzero(exposed)
    if exposed_rows.size == 0:
        return None
    return ShutterBorder(float(lowest), int(exposed_rows[0]), int(exposed_rows[-1]), first, last)


def pad_for_fft(image: np.ndarray, border: ShutterBorder | None = None) -> np.ndarray:
    """The image as float32, its shutter ``border`` filled (:class:`ShutterBorder`), mirrored at its bottom and right
    (``np.pad`` mode "symmetric") to :func:`padded_shape`.

    One pass over the pixels: the conversion to float32 is the copy into the padded array.
    """
    rows, cols = image.shape
    padded_rows, padded_cols = padded_shape(image.shape)
    if border is None and (padded_rows, padded_cols) == (rows, cols):
        return np.asarray(image, dtype=np.float32)
    out = np.empty((padded_rows, padded_cols), dtype=np.float32)
    out[:rows, :cols] = image
    if border is not None:
        border.fill(out, image.shape)
    extra_cols, extra_rows = padded_cols - cols, padded_rows - rows  # next_fast_len(n) < 2n: never more than n
    out[:rows, cols:] = out[:rows, cols - extra_cols : cols][:, ::-1]
    out[rows:] = out[rows - extra_rows : rows][::-1]
    return out


def image_spectrum(image: np.ndarray) -> tuple[np.ndarray, ShutterBorder | None]:
    """``rfft2`` of the padded image with its shutter border filled (complex64, shape
    ``(padded rows, padded cols // 2 + 1)``), and the border (:func:`shutter_border`), to put back after an inverse."""
    border = shutter_border(image)
    return fft.rfft2(pad_for_fft(image, border), workers=threads()), border


def inverse_spectrum(spectrum: np.ndarray, padded: tuple[int, int]) -> np.ndarray:
    """The padded image back from its spectrum (float32; ``spectrum`` is overwritten); crop it to the image's shape.

    Two one-axis passes, the columns' complex inverse in place and then the rows' real inverse: the same values as
    ``irfft2``, which copies the spectrum between its passes; a 2048 x 2048 round trip takes 0.81-0.89x the time of
    ``rfft2`` + ``irfft2`` on one thread (``benchmarks/harmonize.py`` times both)."""
    columns = fft.ifft(spectrum, axis=0, overwrite_x=True, workers=threads())
    return fft.irfft(columns, n=padded[1], axis=1, workers=threads())


def _low_block(shape: tuple[int, int], half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the rfft2 coefficients of a ``shape`` transform within ``half_width`` of zero."""
    rows = np.r_[np.arange(0, half_width + 1), np.arange(shape[0] - half_width, shape[0])]
    return rows, np.arange(0, half_width + 1)


def _fda_half_width(shape: tuple[int, int], beta: float) -> int:
    """``floor(beta * min(h, w))`` of the image's own shape (not the padded one), so that padding changes neither the
    number of coefficients replaced for a ``beta`` nor the meaning of a stored ``half_width``."""
    return int(np.floor(beta * min(shape)))


def summarize_fda(image: np.ndarray) -> Params:
    """One reference image's low-frequency amplitude per padded pixel, of half-width ``floor(BETA_MAX * min(h, w))``.

    The summary's ``amplitude_sum`` has rows ``[0, hw]`` then ``[-hw, -1]`` and columns ``[0, hw]`` of the padded
    image's ``rfft2``: shape ``(2 hw + 1, hw + 1)``, which is how :func:`combine_fda` knows its half-width.
    """
    image = check_image(image)
    padded = padded_shape(image.shape)
    rows, cols = _low_block(padded, _fda_half_width(image.shape, BETA_MAX))
    amplitude = np.abs(image_spectrum(image)[0][np.ix_(rows, cols)]) / (padded[0] * padded[1])
    return {"images": 1, "amplitude_sum": amplitude.astype(np.float64)}


def _crop_block(block: np.ndarray, half_width: int) -> np.ndarray:
    """A low-frequency block (rows ``[0, hw]`` then ``[-hw, -1]``, columns ``[0, hw]``) cropped to ``half_width``."""
    if block.shape[1] == half_width + 1:
        return block
    rows = np.r_[np.arange(0, half_width + 1), np.arange(len(block) - half_width, len(block))]
    return block[np.ix_(rows, np.arange(half_width + 1))]


def combine_fda(first: Params, second: Params) -> Params:
    """Merge two FDA summaries: crop the larger amplitude block to the smaller half-width (exactly the block that
    half-width would have given), then add."""
    half_width = min(first["amplitude_sum"].shape[1], second["amplitude_sum"].shape[1]) - 1
    first, second = (
        {**summary, "amplitude_sum": _crop_block(summary["amplitude_sum"], half_width)} for summary in (first, second)
    )
    return add_summaries(first, second)


def finish_fda(summary: Params) -> Params:
    """The reference group's mean low-frequency amplitude per pixel (``amplitude``) and its ``half_width``."""
    amplitude = summary["amplitude_sum"] / summary["images"]
    return {"amplitude": amplitude, "half_width": amplitude.shape[1] - 1}


def cropped_output(out: np.ndarray, image: np.ndarray, clip: bool, border: ShutterBorder | None = None) -> np.ndarray:
    """The padded inverse transform cropped to the image's shape, as float32, clipped to the input's range unless
    ``clip`` is False (cropping and clipping in one pass), with the image's shutter ``border`` put back. Fourier
    methods return float32 for every input: rounding 4 M pixels back to integers would cost a third of the FFT round
    trip."""
    out = out.astype(np.float32, copy=False)
    rows, cols = image.shape
    if not clip:
        result = out if out.shape == image.shape else np.ascontiguousarray(out[:rows, :cols])
    else:
        # The border's value is the image's minimum: no second pass for it.
        low, high = (border.value if border is not None else float(image.min())), float(image.max())
        result = out if out.shape == image.shape else np.empty(image.shape, dtype=np.float32)
        in_parallel(lambda part: np.clip(out[part, :cols], low, high, out=result[part]), rows)
    if border is not None:
        border.restore(result)
    return result


def apply_fda(image: np.ndarray, params: Params, *, beta: float = 0.01, clip: bool = True) -> np.ndarray:
    """Replace the image's low-frequency amplitude with the reference's, keep its phase; clip to the input range.

    The half-width is ``floor(beta * min(h, w))`` of the image's own shape, at most the stored ``half_width``.
    """
    image = check_image(image)
    if not 0 < beta <= 0.5:
        raise ValueError(f"beta must be in (0, 0.5], got {beta}")
    half_width = min(_fda_half_width(image.shape, beta), int(params["half_width"]))
    padded = padded_shape(image.shape)
    spectrum, border = image_spectrum(image)
    rows, cols = _low_block(padded, half_width)
    reference = _crop_block(np.asarray(params["amplitude"]), half_width) * (padded[0] * padded[1])
    block = spectrum[np.ix_(rows, cols)]
    spectrum[np.ix_(rows, cols)] = reference * np.exp(1j * np.angle(block))
    return cropped_output(inverse_spectrum(spectrum, padded), image, clip, border)


@lru_cache(maxsize=16)
def _band_index(shape: tuple[int, int]) -> np.ndarray:
    """The radial band (by ``BAND_EDGES``, cycles per pixel) of every rfft2 coefficient of a ``shape`` transform."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    index = np.digitize(np.sqrt(fy * fy + fx * fx), BAND_EDGES[1:-1]).astype(np.intp)
    index.setflags(write=False)
    return index


def _band_energies(spectrum: np.ndarray, padded: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean power per coefficient in each radial band of the ``padded``-shape transform ``spectrum``, per pixel (every
    third coefficient each way: plenty for a mean), and how many coefficients of each band were sampled (none for the
    narrowest bands of small images)."""
    index = _band_index(padded)[::3, ::3]
    sample = spectrum[::3, ::3]
    power = (sample.real * sample.real + sample.imag * sample.imag).ravel()
    sums = np.bincount(index.ravel(), weights=power, minlength=len(BAND_EDGES) - 1)
    counts = np.bincount(index.ravel(), minlength=len(BAND_EDGES) - 1)
    return sums / np.maximum(counts, 1) / (padded[0] * padded[1]), counts


def band_energies(image: np.ndarray) -> np.ndarray:
    """Mean power per coefficient (per pixel) in each radial band (``BAND_EDGES``) of the padded image's spectrum."""
    image = check_image(image)
    return _band_energies(image_spectrum(image)[0], padded_shape(image.shape))[0]


def summarize_band_energies(image: np.ndarray) -> Params:
    """One reference image's band energies, and which bands it sampled, as a summary to add up."""
    image = check_image(image)
    energies, counts = _band_energies(image_spectrum(image)[0], padded_shape(image.shape))
    return {"images": 1, "energies_sum": energies, "sampled_images": (counts > 0).astype(np.float64)}


def finish_band_energies(summary: Params) -> Params:
    """The reference group's mean band energies (``energies``; each band's mean over the images that sampled it, so a
    small reference image does not pull a band it cannot see towards zero) and the ``band_edges`` they are for."""
    energies = summary["energies_sum"] / np.maximum(summary["sampled_images"], 1)
    return {"band_edges": BAND_EDGES.copy(), "energies": energies}


def apply_band_equalization(image: np.ndarray, params: Params, *, clip: bool = True) -> np.ndarray:
    """Scale each band's coefficients so its energy matches the reference's; clip to the input range.

    A band with no energy in the image's sample of coefficients keeps a gain of 1.
    """
    image = check_image(image)
    padded = padded_shape(image.shape)
    spectrum, border = image_spectrum(image)
    own, _ = _band_energies(spectrum, padded)
    reference = np.asarray(params["energies"])
    # A band without energy in the image's sample or in the reference is left as it is: the image has none there (a
    # flat image), or none of the band's few coefficients was sampled (band 1 of a 512-pixel side), where a gain of 0
    # would remove them.
    known = (own > 0) & (reference > 0)
    gains = np.where(known, np.sqrt(reference / np.where(known, own, 1.0)), 1.0).astype(np.float32)
    pairs = spectrum.view(np.float32).reshape(*spectrum.shape, 2)  # real and imaginary parts as float32 pairs
    index = _band_index(padded)

    def scale(rows: slice) -> None:
        pairs[rows] *= np.take(gains, index[rows])[..., None]

    in_parallel(scale, spectrum.shape[0])
    return cropped_output(inverse_spectrum(spectrum, padded), image, clip, border)
