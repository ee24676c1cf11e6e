"""What the acquisition-aware methods know of an image besides its pixels: its scanner, its pixel spacing and its
geometric magnification, read from the header of the file being harmonized.

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
    :func:`magnification_of`."""

    scanner: str
    processing: str
    pixel_spacing_mm: float | None
    magnification: float | None = None


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


def acquisition_of(dataset: pydicom.Dataset) -> Acquisition:
    """The image's :class:`Acquisition`, from its header."""
    spacing = pixel_spacing_mm(dataset)
    mean_spacing = None if spacing is None else (spacing[0] + spacing[1]) / 2
    parts = [_text(dataset.get(tag)) for tag in SIGNATURE_TAGS]
    parts.append("?" if mean_spacing is None else f"{mean_spacing:.3f} mm")
    parts.append(_text(dataset.get("PhotometricInterpretation")))
    return Acquisition(" | ".join(parts), " | ".join(parts[:2]), mean_spacing, magnification_of(dataset))
