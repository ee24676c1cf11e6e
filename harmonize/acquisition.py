"""What the acquisition-aware methods know of an image besides its pixels: its scanner, its pixel spacing, its
geometric magnification and its beam, read from the header of the file being harmonized.

The scanner is the device's own header signature: manufacturer, model, detector type, pixel spacing and photometric
interpretation, as written (lower case, ``?`` where a tag is missing), the fields of the ``scanners`` mart's
scanner_id. The spellings are kept as the device wrote them rather than normalised as the mart does: one device writes
one spelling, so they name it, and every worker reads them from the dataset it is decoding anyway, whether the images
come from a cohort in the warehouse or from a bench set that has no warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom

from ingest.images import pixel_spacing_mm

SIGNATURE_TAGS = ("Manufacturer", "ManufacturerModelName", "DetectorType")


@dataclass(frozen=True)
class Acquisition:
    """``scanner``: the header signature; ``processing``: its first two fields, manufacturer and model (whose software
    does the processing: units of one model share it whatever their detector); ``pixel_spacing_mm``: the mean of the
    row and column spacing, None when the header has neither PixelSpacing nor ImagerPixelSpacing; ``magnification``:
    :func:`magnification_of`; ``beam``: :func:`beam_of`."""

    scanner: str
    processing: str
    pixel_spacing_mm: float | None
    magnification: float | None = None
    beam: Beam | None = None


@dataclass(frozen=True)
class Beam:
    """The exposure as the header gives it: kVp, mAs, the DICOM DetectorType (upper case), the source-to-detector
    distance (mm; None when not written) and whether a grid was used (None when the header does not say)."""

    kvp: float
    mas: float
    detector_type: str
    source_to_detector_mm: float | None = None
    grid: bool | None = None


def _text(value: object) -> str:
    text = str(value).strip() if value is not None else ""
    return text.lower() if text else "?"


def _positive(dataset: pydicom.Dataset, keyword: str) -> float | None:
    """A positive number from the tag, or None (missing, empty, 0 or unreadable: what archives write for unknown)."""
    try:
        value = float(dataset.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def magnification_of(dataset: pydicom.Dataset) -> float | None:
    """The geometric magnification of the imaged plane: EstimatedRadiographicMagnificationFactor, else
    DistanceSourceToDetector / DistanceSourceToPatient; None when the header has neither (DICOM PS3.3 C.8.11.7:
    the factor is the ratio of the two distances, for the plane the unit assumes)."""
    factor = _positive(dataset, "EstimatedRadiographicMagnificationFactor")
    if factor is not None:
        return factor
    detector, patient = _positive(dataset, "DistanceSourceToDetector"), _positive(dataset, "DistanceSourceToPatient")
    return detector / patient if detector is not None and patient is not None and detector >= patient else None


def exposure_mas(dataset: pydicom.Dataset) -> float | None:
    """The exposure in mAs from whichever tag the unit wrote: ExposureInmAs, ExposureInuAs, Exposure (integer mAs), or
    XRayTubeCurrent (mA) times ExposureTime (ms); None when none is recorded (0 and empty strings are "not
    recorded")."""
    for keyword, scale in (("ExposureInmAs", 1.0), ("ExposureInuAs", 1e-3), ("Exposure", 1.0)):
        value = _positive(dataset, keyword)
        if value is not None:
            return value * scale
    current, time = _positive(dataset, "XRayTubeCurrent"), _positive(dataset, "ExposureTime")
    return current * time / 1000.0 if current is not None and time is not None else None


def beam_of(dataset: pydicom.Dataset) -> Beam | None:
    """The image's :class:`Beam`, or None when the header lacks its kVp, its exposure or its detector type. Grid
    (0018,1166) says NONE for no grid; any other value names a grid's kind."""
    kvp, mas = _positive(dataset, "KVP"), exposure_mas(dataset)
    detector_type = _text(dataset.get("DetectorType")).upper()
    if kvp is None or mas is None or detector_type == "?":
        return None
    grid = _text(dataset.get("Grid")).upper()
    return Beam(
        kvp,
        mas,
        detector_type,
        _positive(dataset, "DistanceSourceToDetector"),
        None if grid == "?" else "NONE" not in grid,
    )


def acquisition_of(dataset: pydicom.Dataset) -> Acquisition:
    """The image's :class:`Acquisition`, from its header."""
    spacing = pixel_spacing_mm(dataset)
    mean_spacing = None if spacing is None else (spacing[0] + spacing[1]) / 2
    parts = [_text(dataset.get(tag)) for tag in SIGNATURE_TAGS]
    parts.append("?" if mean_spacing is None else f"{mean_spacing:.3f} mm")
    parts.append(_text(dataset.get("PhotometricInterpretation")))
    return Acquisition(
        " | ".join(parts), " | ".join(parts[:2]), mean_spacing, magnification_of(dataset), beam_of(dataset)
    )
