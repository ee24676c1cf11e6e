"""Acquisition-aware harmonization: each scanner's processing (and, alone, its detector) brought to the reference
scanner's, with maps fitted per scanner from that scanner's own images (no paired images needed) and chosen per
image by its header.

Images from one device share its vendor's processing (multi-band enhancement and a tone curve: Vuylsteke and
Schoeters, "Multiscale image contrast amplification (MUSICA)", Proc. SPIE 2167, 1994; Prokop et al., "Principles of
image processing in digital chest radiography", J. Thorac. Imaging 18, 2003) and its detector's MTF and noise power
spectrum. The pixel-only methods estimate their map per image (its histogram, its band energies), so they also take
away what differs between patients, disease included. Here each map is fixed per scanner and estimated from the
scanner's pooled images, so what varies between the images of one scanner is kept. The stages:

- ``geometry``: each image scaled about its centre from its own magnification (the header's
  EstimatedRadiographicMagnificationFactor, or the ratio of DistanceSourceToDetector to DistanceSourceToPatient) to
  the reference scanner's mean. A portable unit at 100 cm magnifies the chest some 6% more than a PA room at 180 cm,
  so its anatomy spans more pixels at the same pixel spacing.
- ``tone``: the monotone map between the pooled body-intensity distribution of the image's processing group (its
  manufacturer and model, whose software does the processing) and the reference scanner's group (mean quantile
  functions, as CDF matching uses, but one map per group instead of one per image). Where both image the same
  population, their distributions before the tone curves are alike, and the map is the reference's tone curve composed
  with the inverse of the group's. Zero stays zero (padding, shutters).
- ``transfer``: a zero-phase filter whose gain at each spatial frequency (cycles per mm, from the header's pixel
  spacing) is the square root of the ratio of the reference scanner's mean power spectrum to the image's processing
  group's. Each spectrum is the same anatomy's spectrum times the group's squared transfer function (the vendor's
  multi-band enhancement times its detectors' MTF) plus its noise power spectrum, so the filter undoes the group's
  transfer and applies the reference's where signal dominates and shapes the noise power spectrum where noise does:
  afterwards the mean spectra agree (second-order statistics matched, as a Wiener-type ratio whose gain is limited to
  ``GAIN_LIMITS`` where one spectrum is nearly empty). The field each spectrum is estimated from is a centred square of
  ``SPECTRUM_FIELD_MM``, Hann-windowed (inside the chest, clear of collimation edges).
- ``detector``: the same ratio per scanner (the full signature, so the detector type and pixel spacing count), applied
  above ``DETECTOR_BAND_PER_MM``, where detector MTFs and noise power spectra part (a-Se against CsI) and the vendors'
  enhancement bands no longer act: what differs between the detectors of one model, brought to the reference detector's
  sharpness and noise power. A method of its own for the ablation, not part of ``physics``: on the stand-in's paired
  renderings it made D110 and S120T (S120's beam and detector behind D110's processing) easier to tell apart, not
  harder; a linear filter does not turn one detector's noise into another's.
- ``physics``: ``geometry``, ``tone`` and ``transfer`` in the tone-matched domain, then ``tone`` again, fitted after
  the others: geometry, processing inversion, and re-processing with the reference's tone.
- ``energy``: energy matching, the kVp- and detector-dependent contrast of bone against soft tissue brought to the
  reference scanner's. Each image's bone component is estimated by a bone model (:mod:`harmonize.bone`: a U-Net
  trained on the stand-in's paired renderings) in the powered benchmark's analysis domain; the scanner's bone contrast
  relative to the reference's is the square root of the ratio of the two scanners' mean bone-estimate energies over
  their own fit images (no pairs needed; a tone curve or a filter cannot follow it: it is ribs drawn brighter or
  darker against the same lungs); the image gets ``(gain - 1)`` times its estimate, carried back to its own pixel
  values (:func:`harmonize.bone.carried_back`). ``physics_energy`` is ``physics`` followed by it.

The processing stages are fitted per manufacturer and model because the processing is the vendor's software: a unit
that shares the reference's model but not its detector keeps the reference's processing and is left as it is by
``physics``. Fitting that pair's whole spectrum difference as a filter would apply a linear filter to what is not
linear (its beam's bone-to-soft-tissue contrast) and create a texture of its own.

Energy matching needs a bone model, which no real archive can train (it has no bone-free twins): it is trained on the
simulator's bench set and travels with the method's parameters. How well it transfers to real radiographs is measured
on the stand-in only; on pydicom-data's real RG1 its estimate is weak (``benchmarks/bone_estimate.py``).

Fitting streams the images once per stage (stage ``k`` is fitted on images already through stages ``0..k-1``), keeping
one summary per scanner (sums, merged like every other method's), pooled per processing group where the stage is
fitted per group. A scanner with fewer than ``MIN_SCANNER_IMAGES`` fit images, or not seen in the fit, keeps its images
as they are; a stage skips an image whose header lacks what it needs (``geometry`` a magnification, ``transfer``,
``detector`` and ``energy`` a pixel spacing), and every image of a scanner none of whose fit images had it.
:func:`fallback_reason` says which images fell back and why; the jobs store it with each image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, partial, reduce

import numpy as np

from harmonize import distribution
from harmonize.acquisition import Acquisition
from harmonize.common import Params, add_summaries, apply_lookup, bone_model_of, check_image, in_parallel, output_values
from harmonize.fourier import cropped_output, image_spectrum, inverse_spectrum, padded_shape

# What the fitted parameters mean: stored with them, checked when they are applied, and part of the digest that names
# their cached images. Raise it whenever a stage's fit or apply changes.
VERSION = 5
MIN_SCANNER_IMAGES = 20
SPECTRUM_FIELD_MM = 200.0
FREQUENCY_EDGES_PER_MM = np.geomspace(0.005, 5.0, 61)
GAIN_LIMITS = (0.125, 8.0)
# Where the detector's share of the spectrum begins and is whole (cycles per mm, a ramp in log frequency between):
# the vendors' enhancement bands (Gaussian sigmas of 0.6 mm and up) act below the first; a-Se and CsI MTFs and noise
# power spectra part above the second (CsI's MTF is about 0.5 near 1.3 cycles per mm, a-Se's above 0.9 there).
DETECTOR_BAND_PER_MM = (0.5, 1.0)
# Radial frequency steps of the gain lookup (cycles per pixel, 0 to the corner at 0.71): finer than any bin above.
RADIUS_STEPS = 4096
# Energy matching: a bone-contrast gain this close to 1 changes nothing worth an estimate; one beyond the limits is an
# estimate gone wrong (90 to 120 kVp changes bone contrast by a few tens of percent), so it is held at them.
ENERGY_TOLERANCE = 1e-3
ENERGY_GAIN_LIMITS = (0.5, 2.0)

# {'seen': {scanner: counts}, 'stage': {scanner: summary}, 'processing': {scanner: its processing group}}
ScannerSummaries = dict[str, dict]


# ----------------------------------------------------------------------------------------------------------------------
# geometry


def summarize_magnification(image: np.ndarray, acquisition: Acquisition) -> Params | None:
    """The image's magnification from its header, or None without one."""
    if acquisition.magnification is None:
        return None
    return {"images": 1, "magnification_sum": float(acquisition.magnification)}


def finish_magnification(summary: Params) -> Params:
    return {"magnification": np.float64(summary["magnification_sum"] / summary["images"])}


def _resampled_axis(image: np.ndarray, factor: float, axis: int) -> np.ndarray:
    """The image scaled by ``factor`` about its centre along ``axis``, same length, linear interpolation, edges
    continued."""
    length = image.shape[axis]
    centre = (length - 1) / 2
    source = np.clip(centre + (np.arange(length) - centre) / factor, 0, length - 1)
    lower = np.minimum(source.astype(np.intp), length - 2)
    weight = (source - lower).astype(np.float32)
    shape = [1, 1]
    shape[axis] = length
    weight = weight.reshape(shape)
    below, above = np.take(image, lower, axis=axis), np.take(image, lower + 1, axis=axis)
    return below + weight * (above - below)


def apply_magnification(image: np.ndarray, acquisition: Acquisition, own: Params, reference: Params) -> np.ndarray:
    """Scale the image about its centre from its own magnification (header) to the reference scanner's mean, so that
    anatomy spans as many pixels as on the reference (float32, same shape; bilinear, as two 1-D passes)."""
    image = check_image(image)
    factor = float(reference["magnification"]) / acquisition.magnification
    if abs(factor - 1.0) < 1e-4 or min(image.shape) < 2:
        return image
    scaled = _resampled_axis(image.astype(np.float32, copy=False), factor, 0)
    return _resampled_axis(scaled, factor, 1)


# ----------------------------------------------------------------------------------------------------------------------
# tone


def summarize_tone(image: np.ndarray, acquisition: Acquisition) -> Params:
    """The image's body-intensity quantile function (as CDF matching's fit reads it)."""
    return distribution.summarize_quantiles(image)


def finish_tone(summary: Params) -> Params:
    return {"quantiles": summary["quantiles_sum"] / summary["images"]}


def _increasing_knots(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a monotone map through (0, 0) and each (source quantile, target quantile), ties merged, continued
    beyond the last with slope 1."""
    source, first = np.unique(np.asarray(source, dtype=np.float64), return_index=True)
    ends = np.r_[first[1:], len(target)]
    target = np.array([np.mean(target[start:end]) for start, end in zip(first, ends, strict=True)])
    target = np.maximum.accumulate(target)
    if source[0] > 0:
        source, target = np.r_[0.0, source], np.r_[0.0, target]
    span = max(source[-1] - source[0], 1.0)
    return np.r_[source, source[-1] + 1e3 * span], np.r_[target, target[-1] + 1e3 * span]


def apply_tone(image: np.ndarray, acquisition: Acquisition, own: Params, reference: Params) -> np.ndarray:
    """Map the image's values from its scanner's pooled quantile function to the reference scanner's."""
    image = check_image(image)
    knots, targets = _increasing_knots(own["quantiles"], reference["quantiles"])
    if image.dtype.kind == "u":
        return apply_lookup(image, np.interp(np.arange(int(image.max()) + 1, dtype=np.float64), knots, targets))
    return output_values(np.interp(image.ravel(), knots, targets).reshape(image.shape), image)


# ----------------------------------------------------------------------------------------------------------------------
# transfer


def _bin_centres() -> np.ndarray:
    return np.sqrt(FREQUENCY_EDGES_PER_MM[:-1] * FREQUENCY_EDGES_PER_MM[1:])


def summarize_spectrum(image: np.ndarray, acquisition: Acquisition) -> Params | None:
    """The mean power spectral density (value squared times mm squared) in each radial band of
    ``FREQUENCY_EDGES_PER_MM`` of a centred ``SPECTRUM_FIELD_MM`` square, Hann-windowed; None without a pixel
    spacing."""
    image = check_image(image)
    spacing = acquisition.pixel_spacing_mm
    if spacing is None:
        return None
    side = int(min(round(SPECTRUM_FIELD_MM / spacing), *image.shape))
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    field = image[top : top + side, left : left + side].astype(np.float64)
    window = np.outer(np.hanning(side), np.hanning(side))
    transform = np.fft.rfft2((field - field.mean()) * window)
    density = (transform.real**2 + transform.imag**2) * spacing**2 / np.sum(window**2)
    radius = np.hypot(np.fft.fftfreq(side, d=spacing)[:, None], np.fft.rfftfreq(side, d=spacing)[None, :])
    bins = np.digitize(radius.ravel(), FREQUENCY_EDGES_PER_MM) - 1
    inside = (bins >= 0) & (bins < len(FREQUENCY_EDGES_PER_MM) - 1)
    sums = np.bincount(bins[inside], weights=density.ravel()[inside], minlength=len(FREQUENCY_EDGES_PER_MM) - 1)
    counts = np.bincount(bins[inside], minlength=len(FREQUENCY_EDGES_PER_MM) - 1)
    return {
        "images": 1,
        "density_sum": sums / np.maximum(counts, 1),
        "sampled_images": (counts > 0).astype(np.float64),
    }


def finish_spectrum(summary: Params) -> Params:
    """The scanner's mean power spectral density per band (0 where no image sampled the band)."""
    return {"density": summary["density_sum"] / np.maximum(summary["sampled_images"], 1)}


def detector_share(cycles_per_mm: np.ndarray) -> np.ndarray:
    """The share of the spectrum the detector stage matches at each frequency: 0 below ``DETECTOR_BAND_PER_MM``, 1
    above it, a ramp in log frequency between."""
    low, high = np.log(DETECTOR_BAND_PER_MM)
    return np.clip((np.log(np.maximum(cycles_per_mm, 1e-6)) - low) / (high - low), 0.0, 1.0)


def transfer_gains(own: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per band, ``sqrt(reference / own)`` within ``GAIN_LIMITS``; a band either spectrum lacks takes its nearest
    neighbours' gain."""
    known = (own > 0) & (reference > 0)
    if not known.any():
        return np.ones_like(own)
    ratio = np.sqrt(reference[known] / own[known])
    index = np.arange(len(own))
    return np.clip(np.interp(index, index[known], ratio), *GAIN_LIMITS)


@lru_cache(maxsize=8)
def _radius_steps(padded: tuple[int, int]) -> np.ndarray:
    """Each rfft2 coefficient's radial frequency in ``RADIUS_STEPS`` steps of 0.71 / RADIUS_STEPS cycles per pixel."""
    radius = np.hypot(np.fft.fftfreq(padded[0])[:, None], np.fft.rfftfreq(padded[1])[None, :])
    steps = np.minimum(np.rint(radius / np.sqrt(0.5) * (RADIUS_STEPS - 1)), RADIUS_STEPS - 1).astype(np.int16)
    steps.setflags(write=False)
    return steps


def filter_gains(
    acquisition: Acquisition,
    own: Params,
    reference: Params,
    *,
    share: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """The gain at each of ``RADIUS_STEPS`` radial frequencies (0 to 0.71 cycles per pixel) of the filter from the
    image's group's spectrum to the reference's (:func:`transfer_gains`, at frequencies in cycles per mm), raised to
    ``share`` of each frequency where given (:func:`detector_share` for the detector stage); the mean is kept."""
    gains = transfer_gains(np.asarray(own["density"]), np.asarray(reference["density"]))
    cycles_per_mm = np.linspace(0.0, np.sqrt(0.5), RADIUS_STEPS) / acquisition.pixel_spacing_mm
    centres = _bin_centres()
    step_gains = np.interp(np.log(np.maximum(cycles_per_mm, centres[0])), np.log(centres), gains)
    if share is not None:
        step_gains = step_gains ** share(cycles_per_mm)
    step_gains[0] = 1.0
    return step_gains


def apply_filter(image: np.ndarray, step_gains: np.ndarray) -> np.ndarray:
    """The image through the zero-phase filter of :func:`filter_gains` (one FFT round trip; float32), its shutter border
    filled before and put back after (:class:`harmonize.fourier.ShutterBorder`): no ringing at the field's edge."""
    image = check_image(image)
    step_gains = np.asarray(step_gains, dtype=np.float32)
    padded = padded_shape(image.shape)
    spectrum, border = image_spectrum(image)
    steps = _radius_steps(padded)
    pairs = spectrum.view(np.float32).reshape(*spectrum.shape, 2)

    def scale(rows: slice) -> None:
        pairs[rows] *= np.take(step_gains, steps[rows])[..., None]

    in_parallel(scale, spectrum.shape[0])
    return cropped_output(inverse_spectrum(spectrum, padded), image, False, border)


# ----------------------------------------------------------------------------------------------------------------------
# energy


def _bone_estimate(image: np.ndarray, acquisition: Acquisition, bone_model: Params) -> tuple[np.ndarray, ...]:
    """The image's bone component estimated in the bone model's analysis domain, the image's spacing, and its
    analysis content before equalization (:func:`harmonize.bone.field_analysis`)."""
    # harmonize.bone imports torch: only where a bone model is used (the command line starts without it).
    from harmonize.bone import bone_preprocessing, estimate_bone, field_analysis

    spacing = (acquisition.pixel_spacing_mm,) * 2
    analysed, unequalized = field_analysis(check_image(image), spacing, bone_preprocessing(bone_model))
    return estimate_bone(bone_model, analysed[None])[0], spacing, unequalized


def summarize_energy(image: np.ndarray, acquisition: Acquisition, *, bone_model: Params) -> Params:
    """The mean square of the image's bone estimate: its scanner's bone contrast, squared, up to a constant."""
    estimated, _, _ = _bone_estimate(image, acquisition, bone_model)
    return {"images": 1, "bone_energy_sum": np.float64(np.mean(estimated.astype(np.float64) ** 2))}


def finish_energy(summary: Params) -> Params:
    return {"bone_energy": np.float64(summary["bone_energy_sum"] / summary["images"])}


def energy_gain(own: Params, reference: Params) -> float:
    """The factor that brings the scanner's bone contrast to the reference's, ``sqrt(E_reference / E_own)`` of the
    mean bone-estimate energies, within ``ENERGY_GAIN_LIMITS``."""
    own_energy, reference_energy = float(own["bone_energy"]), float(reference["bone_energy"])
    if own_energy <= 0 or reference_energy <= 0:
        return 1.0
    return float(np.clip(np.sqrt(reference_energy / own_energy), *ENERGY_GAIN_LIMITS))


def apply_energy(
    image: np.ndarray, acquisition: Acquisition, own: Params, reference: Params, *, bone_model: Params
) -> np.ndarray:
    """Add ``(gain - 1)`` times the image's bone estimate (:func:`energy_gain`), carried back to its pixel values."""
    from harmonize.bone import bone_preprocessing, carried_back

    gain = energy_gain(own, reference)
    if abs(gain - 1.0) < ENERGY_TOLERANCE:
        return image
    estimated, spacing, unequalized = _bone_estimate(image, acquisition, bone_model)
    change = (gain - 1.0) * estimated
    return carried_back(image, spacing, change, bone_preprocessing(bone_model), unequalized=unequalized)


# ----------------------------------------------------------------------------------------------------------------------
# stages, methods, fitting and applying


@dataclass(frozen=True)
class Stage:
    """``summarize(image, acquisition) -> summary or None`` (None: the image says nothing to this stage),
    ``finish(summed) -> one group's arrays``, and either ``apply(image, acquisition, own arrays, reference arrays)``
    or, for a filter, ``gains(acquisition, own arrays, reference arrays)`` (:func:`filter_gains`: consecutive filters
    compose, so :func:`apply` runs them as one);
    ``needs``: the :class:`Acquisition` field without which the stage leaves an image as it is; ``per``: what the
    stage is fitted per, ``scanner`` or ``processing`` (the scanners of one manufacturer and model pooled, and any of
    them sharing the reference scanner's processing left as they are); ``reads_bone_model``: ``summarize`` and
    ``apply`` also take the method's bone model (``bone_model=``, :mod:`harmonize.bone`)."""

    name: str
    summarize: Callable[[np.ndarray, Acquisition], Params | None]
    finish: Callable[[Params], Params]
    apply: Callable[[np.ndarray, Acquisition, Params, Params], np.ndarray] | None = None
    gains: Callable[[Acquisition, Params, Params], np.ndarray] | None = None
    needs: str | None = None
    per: str = "scanner"
    reads_bone_model: bool = False

    def can_take(self, acquisition: Acquisition) -> bool:
        return self.needs is None or getattr(acquisition, self.needs) is not None


STAGES = {
    "geometry": Stage(
        "geometry", summarize_magnification, finish_magnification, apply_magnification, needs="magnification"
    ),
    "tone": Stage("tone", summarize_tone, finish_tone, apply_tone, per="processing"),
    "transfer": Stage(
        "transfer",
        summarize_spectrum,
        finish_spectrum,
        gains=filter_gains,
        needs="pixel_spacing_mm",
        per="processing",
    ),
    "detector": Stage(
        "detector",
        summarize_spectrum,
        finish_spectrum,
        gains=partial(filter_gains, share=detector_share),
        needs="pixel_spacing_mm",
    ),
    "energy": Stage(
        "energy", summarize_energy, finish_energy, apply_energy, needs="pixel_spacing_mm", reads_bone_model=True
    ),
}
SCANNER_METHODS: dict[str, tuple[str, ...]] = {
    "geometry": ("geometry",),
    "tone": ("tone",),
    "transfer": ("transfer",),
    "detector": ("detector",),
    "physics": ("geometry", "tone", "transfer", "tone"),
    "energy": ("energy",),
    "physics_energy": ("geometry", "tone", "transfer", "tone", "energy"),
}
DESCRIPTIONS = {
    "geometry": "scaled from the header's magnification to the reference scanner's",
    "tone": "per-processing (manufacturer and model) tone map to the reference scanner's",
    "transfer": "per-processing (manufacturer and model) spectrum-ratio filter to the reference scanner's",
    "detector": "per-scanner spectrum-ratio filter above 0.5-1 cycles/mm (the detector's MTF and noise)",
    "physics": "geometry, tone, transfer and re-toning: the acquisition-aware chain",
    "energy": "per-scanner bone-contrast gain on a learned bone estimate (energy matching)",
    "physics_energy": "the acquisition-aware chain, then energy matching",
}


def stages_of(method: str) -> tuple[Stage, ...]:
    if method not in SCANNER_METHODS:
        raise ValueError(f"unknown acquisition-aware method {method!r}; choose one of {sorted(SCANNER_METHODS)}")
    return tuple(STAGES[name] for name in SCANNER_METHODS[method])


def reads_bone_model(method: str) -> bool:
    """Whether the method has a stage that needs a bone model (:mod:`harmonize.bone`) to be fitted and applied."""
    return method in SCANNER_METHODS and any(stage.reads_bone_model for stage in stages_of(method))


def _bone_model_arguments(stage: Stage, params: Params) -> dict[str, Params]:
    """What the stage takes besides its arrays: the method's bone model, for a stage that reads it."""
    if not stage.reads_bone_model:
        return {}
    return {"bone_model": bone_model_of(params)}


def fitted_energy_gain(params: Params, acquisition: Acquisition) -> float | None:
    """The bone-contrast gain the method's ``energy`` stage gives the image's scanner (:func:`energy_gain`), or None
    where it has no such stage or the stage was not fitted for that scanner."""
    names = SCANNER_METHODS[str(params["method"])]
    if "energy" not in names or acquisition.scanner not in params["scanners"]:
        return None
    stage, scanners = names.index("energy"), list(params["scanners"])
    own, reference = scanners.index(acquisition.scanner), scanners.index(str(params["reference_scanner"]))
    if not params[f"stage{stage}.fitted"][own]:
        return None
    return energy_gain(_scanner_params(params, stage, own), _scanner_params(params, stage, reference))


def _scanner_params(params: Params, stage: int, scanner: int) -> Params:
    prefix = f"stage{stage}."
    return {key[len(prefix) :]: value[scanner] for key, value in params.items() if key.startswith(prefix)}


def _usable(params: Params, stage: int, scanner: int, acquisition: Acquisition) -> tuple[bool, str | None]:
    """Whether stage ``stage`` changes this image, and if not, why (None: the stage has nothing to do here)."""
    chosen = stages_of(str(params["method"]))[stage]
    if not params[f"stage{stage}.fitted"][scanner]:
        return False, f"the {chosen.name} stage was not fitted for this scanner (no fit image had its {chosen.needs})"
    if not chosen.can_take(acquisition):
        return False, f"no {chosen.needs} in the header: the {chosen.name} stage left the image as it is"
    return True, None


def fallback_reason(params: Params, acquisition: Acquisition, *, stages: int | None = None) -> str | None:
    """Why the image is (partly) left as it is, or None: its scanner was not fitted, a stage was not fitted for its
    scanner, or its header lacks what a stage needs. ``stages``: how many of the method's stages count (all by
    default)."""
    if acquisition.scanner not in params["scanners"]:
        return f"scanner not fitted ({acquisition.scanner}): image left as it is"
    own = list(params["scanners"]).index(acquisition.scanner)
    count = len(stages_of(str(params["method"]))[:stages])
    reasons = [_usable(params, k, own, acquisition)[1] for k in range(count)]
    return "; ".join(reason for reason in reasons if reason) or None


def apply(image: np.ndarray, acquisition: Acquisition, params: Params, *, stages: int | None = None) -> np.ndarray:
    """The image through the method's first ``stages`` stages (all by default), each with its scanner's fitted arrays
    and the reference scanner's; a stage the image cannot take (:func:`fallback_reason`) leaves it as it is. An
    integer image comes back in its own dtype, anything else as float32 (:func:`harmonize.common.output_values`)."""
    if params.get("version") != VERSION:
        raise ValueError(
            f"these {params.get('method')!r} parameters were fitted by version {params.get('version', 1)} of the "
            f"acquisition-aware methods, this is version {VERSION}: fit them again"
        )
    scanners = list(params["scanners"])
    if acquisition.scanner not in scanners:
        return image
    own, reference = scanners.index(acquisition.scanner), scanners.index(str(params["reference_scanner"]))
    # An integer image stays integer between stages (rounded: within half a stored value), so that every tone map is a
    # lookup table rather than an interpolation of each pixel; consecutive filters multiply into one transform.
    like, pending = image, None
    for k, stage in enumerate(stages_of(str(params["method"]))[:stages]):
        if not _usable(params, k, own, acquisition)[0]:
            continue
        own_arrays, reference_arrays = _scanner_params(params, k, own), _scanner_params(params, k, reference)
        if stage.gains is not None:
            gains = stage.gains(acquisition, own_arrays, reference_arrays)
            pending = gains if pending is None else pending * gains
            continue
        if pending is not None:
            image, pending = output_values(apply_filter(image, pending), like), None
        extra = _bone_model_arguments(stage, params)
        image = output_values(stage.apply(image, acquisition, own_arrays, reference_arrays, **extra), like)
    return image if pending is None else output_values(apply_filter(image, pending), like)


def summarize_pass(
    method: str,
    stage: int,
    fitted: Params | None,
    images: Iterable[tuple[np.ndarray, Acquisition, bool]],
    *,
    bone_model: Params | None = None,
) -> ScannerSummaries:
    """One pass's summaries of ``(image, acquisition, is a reference image)``, each image first taken through the
    stages fitted so far (``fitted``: the parameters of the earlier passes, which hold the bone model once there are
    any; before, ``bone_model``): per scanner, how many images it has and how many are reference images (``seen``),
    and the stage's summary of those it could use (``stage``)."""
    chosen = stages_of(method)[stage]
    extra = _bone_model_arguments(chosen, fitted if fitted is not None else (bone_model or {}))
    if extra and not extra["bone_model"]:
        raise ValueError(f"{method!r} needs a bone model: train one with `xrh harmonize bone-model --bench DIR`")
    summaries: ScannerSummaries = {"seen": {}, "stage": {}, "processing": {}}
    for image, acquisition, is_reference in images:
        if fitted is not None:
            if acquisition.scanner not in fitted["scanners"]:
                continue
            image = apply(image, acquisition, fitted, stages=stage)
        seen = {"images": 1, "reference_images": int(is_reference)}
        summary = chosen.summarize(image, acquisition, **extra) if chosen.can_take(acquisition) else None
        used = {
            "seen": {acquisition.scanner: seen},
            "stage": {acquisition.scanner: summary} if summary else {},
            "processing": {acquisition.scanner: acquisition.processing},
        }
        summaries = combine_summaries(summaries, used)
    return summaries


def _merged(first: dict[str, Params], second: dict[str, Params]) -> dict[str, Params]:
    merged = dict(first)
    for scanner, summary in second.items():
        merged[scanner] = add_summaries(merged[scanner], summary) if scanner in merged else summary
    return merged


def combine_summaries(first: ScannerSummaries, second: ScannerSummaries) -> ScannerSummaries:
    """Merge two passes' summaries: per scanner, added key by key."""
    merged = {part: _merged(first[part], second[part]) for part in ("seen", "stage")}
    return {**merged, "processing": {**first["processing"], **second["processing"]}}


def finish_pass(
    method: str,
    stage: int,
    fitted: Params | None,
    summaries: Iterable[ScannerSummaries],
    *,
    min_images: int | None = None,
    bone_model: Params | None = None,
) -> Params:
    """The parameters after pass ``stage``: the first pass chooses the scanners (at least ``min_images`` images,
    ``MIN_SCANNER_IMAGES`` by default) and the reference scanner (the one with the most reference images), and keeps
    ``bone_model``'s arrays where the method reads one; every pass adds its stage's arrays, one row per scanner, and
    ``stage<k>.fitted`` (0 for a scanner none of whose images the stage could use: such a scanner's images skip the
    stage, and so do every scanner's when the reference's could not be used).

    Raises
    ------
    ValueError
        If no scanner has enough images, or none of them has reference images.
    """
    merged = reduce(combine_summaries, summaries, {"seen": {}, "stage": {}, "processing": {}})
    if fitted is None:
        min_images = MIN_SCANNER_IMAGES if min_images is None else min_images
        counts = {scanner: int(summary["images"]) for scanner, summary in merged["seen"].items()}
        scanners = sorted(scanner for scanner, count in counts.items() if count >= min_images)
        with_reference = [s for s in scanners if merged["seen"][s]["reference_images"] > 0]
        if not with_reference:
            raise ValueError(
                f"fitting {method!r} needs a scanner with at least {min_images} images among the reference "
                f"images; images per scanner: {counts or 'none'}"
            )
        reference = max(with_reference, key=lambda s: (merged["seen"][s]["reference_images"], s))
        fitted = {"method": method, "version": VERSION, "scanners": scanners, "reference_scanner": reference}
        fitted["processing"] = [merged["processing"][s] for s in scanners]
        fitted["scanner_images"] = np.array([counts[s] for s in scanners], dtype=np.float64)
        if reads_bone_model(method):
            fitted.update(bone_model or {})
    chosen, reference = stages_of(method)[stage], fitted["reference_scanner"]
    groups = dict(zip(fitted["scanners"], fitted["processing"], strict=True))

    def group_of(scanner: str) -> str:
        """Whose summaries make the scanner's row: its own, or its processing group's pooled; the reference's model
        is the reference scanner alone, so its other units keep the reference's processing and every other group is
        brought to the reference scanner, not to a mix of its model's units."""
        if chosen.per == "scanner":
            return scanner
        return reference if groups[scanner] == groups[reference] else groups[scanner]

    pooled: dict[str, Params] = {}
    for scanner, summary in merged["stage"].items():
        if scanner in groups and (group_of(scanner) != reference or scanner == reference):
            key = group_of(scanner)
            pooled[key] = add_summaries(pooled[key], summary) if key in pooled else summary
    rows = {s: chosen.finish(pooled[group_of(s)]) for s in fitted["scanners"] if group_of(s) in pooled}
    fitted_flags = [float(s in rows and reference in rows) for s in fitted["scanners"]]
    # Rows of scanners the stage skips only hold the shape (any fitted row will do); with none, the stage is empty.
    filler = next(iter(rows.values()), {})
    arrays = {f"stage{stage}.{key}": np.stack([rows.get(s, filler)[key] for s in fitted["scanners"]]) for key in filler}
    return {**fitted, **arrays, f"stage{stage}.fitted": np.array(fitted_flags)}


def fit(
    method: str,
    images: Callable[[], Iterable[tuple[np.ndarray, Acquisition, bool]]],
    *,
    min_images: int | None = None,
    bone_model: Params | None = None,
) -> Params:
    """The method's parameters from ``images()`` (called once per stage: a fresh stream of ``(image, acquisition, is
    a reference image)``), in this process; ``min_images``, ``bone_model``: see :func:`finish_pass`."""
    fitted = None
    for stage in range(len(stages_of(method))):
        summaries = [summarize_pass(method, stage, fitted, images(), bone_model=bone_model)]
        fitted = finish_pass(method, stage, fitted, summaries, min_images=min_images, bone_model=bone_model)
    return fitted
