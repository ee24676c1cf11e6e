"""The harmonization methods by name: each a fit function (reference images -> params) and an apply function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from harmonize import distribution, fourier, intensity


@dataclass(frozen=True)
class ImageMethod:
    name: str
    fit: Callable
    apply: Callable
    description: str


IMAGE_METHODS: dict[str, ImageMethod] = {
    method.name: method
    for method in (
        ImageMethod("minmax", intensity.fit, intensity.apply_minmax, "per-image min-max to the reference range"),
        ImageMethod(
            "percentile",
            intensity.fit,
            intensity.apply_percentile_window,
            "0.5-99.5 percentile window of the body to the reference's",
        ),
        ImageMethod("zscore", intensity.fit, intensity.apply_zscore, "body mean and SD to the reference's"),
        ImageMethod(
            "cdf",
            distribution.fit_quantiles,
            distribution.apply_cdf_matching,
            "exact CDF matching to the reference mean quantile function",
        ),
        ImageMethod(
            "cdf_subsampled",
            distribution.fit_quantiles,
            partial(distribution.apply_cdf_matching, step=2),
            "CDF matching, CDF from every other pixel",
        ),
        ImageMethod(
            "nyul", distribution.fit_landmarks, distribution.apply_landmarks, "Nyul-Udupa piecewise-linear landmarks"
        ),
        ImageMethod(
            "fda", fourier.fit_fda, partial(fourier.apply_fda, beta=0.01), "Fourier domain adaptation, beta 0.01"
        ),
        ImageMethod(
            "bands", fourier.fit_band_energies, fourier.apply_band_equalization, "radial band-energy equalization"
        ),
    )
}


def image_method(name: str) -> ImageMethod:
    if name not in IMAGE_METHODS:
        raise ValueError(f"unknown harmonization method {name!r}; choose one of {sorted(IMAGE_METHODS)}")
    return IMAGE_METHODS[name]
