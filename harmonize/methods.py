"""The harmonization methods by name, each fitted from streamed per-image summaries and applied image by image.

A method's fit is three small pure functions: ``summarize`` (one reference image -> its summary: a small dict of
sums, with an ``"images"`` count), ``combine`` (two summaries -> their merge; associative, so batches can be
summarized in worker processes and merged in any grouping) and ``finish`` (the merged summary -> the parameters
stored in harm_params). :meth:`ImageMethod.fit` streams images through them and keeps one summary in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial, reduce

import numpy as np

from harmonize import distribution, fourier, intensity, scanners
from harmonize.common import Params, add_summaries


@dataclass(frozen=True)
class ImageMethod:
    """A harmonization method: how to summarize, merge and finish a fit, and how to apply the fitted parameters.

    ``summarize(image) -> summary``, ``combine(summary, summary) -> summary``, ``finish(summary) -> params`` and
    ``apply(image, params) -> image``; all pure.
    """

    name: str
    summarize: Callable[[np.ndarray], Params]
    combine: Callable[[Params, Params], Params]
    finish: Callable[[Params], Params]
    apply: Callable[[np.ndarray, Params], np.ndarray]
    description: str

    def summarize_all(self, images: Iterable[np.ndarray]) -> Params:
        """One summary of ``images`` (a batch, say, in a worker process), read one at a time.

        Raises
        ------
        ValueError
            If there are no images.
        """
        return self._merged(map(self.summarize, images), "images")

    def fit(self, images: Iterable[np.ndarray]) -> Params:
        """The parameters fitted on the reference ``images``, read one at a time (memory does not grow with their
        number).

        Raises
        ------
        ValueError
            If there are no images.
        """
        return self.finish(self.summarize_all(images))

    def fit_summaries(self, summaries: Iterable[Params]) -> Params:
        """The parameters from summaries of batches of reference images (:meth:`summarize_all`), merged in order.

        Raises
        ------
        ValueError
            If there are no summaries.
        """
        return self.finish(self._merged(summaries, "summaries"))

    def _merged(self, summaries: Iterable[Params], what: str) -> Params:
        summaries = iter(summaries)
        first = next(summaries, None)
        if first is None:
            raise ValueError(f"fitting {self.name!r} needs at least one reference image, got no {what}")
        return reduce(self.combine, summaries, first)


def _statistics_method(name: str, apply: Callable, description: str) -> ImageMethod:
    return ImageMethod(
        name, intensity.summarize_statistics, add_summaries, intensity.finish_statistics, apply, description
    )


def _quantiles_method(name: str, apply: Callable, description: str) -> ImageMethod:
    return ImageMethod(
        name, distribution.summarize_quantiles, add_summaries, distribution.finish_quantiles, apply, description
    )


IMAGE_METHODS: dict[str, ImageMethod] = {
    method.name: method
    for method in (
        _statistics_method("minmax", intensity.apply_minmax, "per-image min-max to the reference range"),
        _statistics_method(
            "percentile",
            intensity.apply_percentile_window,
            "0.5-99.5 percentile window of the body to the reference's",
        ),
        _statistics_method("zscore", intensity.apply_zscore, "body mean and SD to the reference's"),
        _quantiles_method(
            "cdf", distribution.apply_cdf_matching, "exact CDF matching to the reference mean quantile function"
        ),
        _quantiles_method(
            "cdf_subsampled",
            partial(distribution.apply_cdf_matching, step=2),
            "CDF matching, CDF from every other pixel",
        ),
        ImageMethod(
            "nyul",
            distribution.summarize_landmarks,
            add_summaries,
            distribution.finish_landmarks,
            distribution.apply_landmarks,
            "Nyul-Udupa piecewise-linear landmarks",
        ),
        ImageMethod(
            "fda",
            fourier.summarize_fda,
            fourier.combine_fda,
            fourier.finish_fda,
            partial(fourier.apply_fda, beta=0.01),
            "Fourier domain adaptation, beta 0.01",
        ),
        ImageMethod(
            "bands",
            fourier.summarize_band_energies,
            add_summaries,
            fourier.finish_band_energies,
            fourier.apply_band_equalization,
            "radial band-energy equalization",
        ),
    )
}


# Every method by name and what it does: the pixel-only methods above, then the acquisition-aware ones
# (harmonize.scanners), which also read each image's header.
DESCRIPTIONS = {
    **{name: method.description for name, method in IMAGE_METHODS.items()},
    **scanners.DESCRIPTIONS,
}


def check_method(name: str) -> str:
    """``name`` if it is a method, else a ValueError naming the methods there are."""
    if name not in DESCRIPTIONS:
        raise ValueError(f"unknown harmonization method {name!r}; choose one of {list(DESCRIPTIONS)}")
    return name


def reads_acquisition(name: str) -> bool:
    """Whether the method is acquisition-aware: fitted per scanner on every scanner's images, applied with the
    image's header."""
    return check_method(name) in scanners.SCANNER_METHODS


def image_method(name: str) -> ImageMethod:
    if name not in IMAGE_METHODS:
        raise ValueError(f"unknown harmonization method {name!r}; choose one of {sorted(IMAGE_METHODS)}")
    return IMAGE_METHODS[name]
