"""A randomized thorax phantom, projected to material path-length maps.

The anatomy is three-dimensional: ellipsoids (lungs, breasts, air spaces; the heart and pedicles turned along their
long axes), elliptic cylinders (the torso, flat-ended ones for vertebral bodies), tubes of elliptic section along 3-D
polylines (ribs and other bones with a cortical shell, clavicles, devices; where two tubes cross, their paths add),
pulmonary vessel trees grown by Murray's laws (``simulate.vessels``) and a power-law texture of parenchyma and soft
tissue (``simulate.texture``). A projection integrates each
material along the beam, for a frontal (PA or AP) or a lateral view, giving path-length maps in cm at each material's
nominal density (``simulate.attenuation.MATERIALS``). Geometric magnification follows each structure's distance from the
detector, so hearts look larger on portable AP films, as they do on real ones.

Coordinates: ``x`` patient right (-) to left (+), ``y`` head (-) to feet (+), ``z`` posterior (-) to anterior (+), in cm
from the centre of the chest. Images show the patient's right on the left for frontal views and anterior on the left for
laterals. Findings (``Findings``) change the maps the way the disease changes the anatomy: consolidation and edema
replace alveolar air with fluid, effusion fills the dependent pleural space, cardiomegaly enlarges the heart, and so on.

References: the structure of projected analytic phantoms follows Segars et al., "4D XCAT phantom for multimodality
imaging research", Med. Phys. 37 (2010), at a much coarser level of detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache, partial

import numpy as np
from scipy.interpolate import PchipInterpolator

from simulate.attenuation import MATERIAL_NAMES
from simulate.texture import power_law_field, sample_field
from simulate.vessels import grow_tree

FINDINGS = (
    "atelectasis",
    "cardiomegaly",
    "consolidation",
    "edema",
    "enlarged_cardiomediastinum",
    "fracture",
    "lung_lesion",
    "pleural_effusion",
    "pleural_other",
    "pneumonia",
    "pneumothorax",
    "support_devices",
)

# Anatomy constants (cm unless named otherwise); each structure's docstring names its source.
RIB_SPACING_CM = 2.5  # thoracic vertebral body and disc height (Gray's Anatomy, 41st ed., ch. 43)
# Spread (relative standard deviation) of each rib's drop, reach and section height about the patient's pattern.
RIB_SHAPE_SPREAD = (0.07, 0.025, 0.08)
# The share of its drop a rib has come down by each azimuth (as a share of pi): read off RG1's posterior ribs, which
# arch out from the spine and fall most steeply at the wall, and its anterior ribs, which run down and in less steeply.
RIB_DESCENT = ((0.0, 0.12, 0.3, 0.5, 0.65, 0.85), (0.0, -0.04, 0.08, 0.5, 0.75, 1.0))
# At its sternal end a rib's section is this many times as high as at mid-rib, this share as thick and its cortex this
# share as thick; at the vertebra it is this many times as thick (the shares are estimates; see _rib).
ANTERIOR_RIB_BROADENING = 1.3
ANTERIOR_THICKNESS_SHARE = 0.6
ANTERIOR_CORTEX_SHARE = 0.5
POSTERIOR_THICKENING = 1.8
RIB_EDGE_CORTEX_SHARE = 0.5  # the upper and lower edges' cortex against the faces' (a guess: thinner, not how much)
CORTEX_CM = 0.1  # cortical shell of ribs and vertebrae (ICRP Publication 70, 1995)
TRABECULAR_FRACTION = 0.2  # bone volume fraction of trabecular bone (ICRP Publication 70, 1995)
# Vertebral bodies are sparser and thinner-walled than ribs: trabecular bone volume fraction about 0.1 in the spine
# (Hildebrand et al., J. Bone Miner. Res. 14 (1999) 1167) inside a cortical shell of about 0.4 mm (Silva, Wang and
# Fyhrie, J. Bone Miner. Res. 9 (1994) 1719).
VERTEBRAL_TRABECULAR_FRACTION = 0.1
VERTEBRAL_CORTEX_CM = 0.04
END_PLATE_CONCAVITY_CM = 0.15  # depth of the end plates' dish: about 1-2 mm (an estimate, no source measured here)
# Posterior elements. Pedicles about 15-17 mm long (Kim et al., J. Korean Neurosurg. Soc. 46 (2009) 181); a canal
# about 16 mm wide between them (Panjabi et al. 1991); spinous processes about 3 cm long, their tips 5 mm wide (Egwu
# et al. 2019), sloping 40-60 degrees below horizontal in the mid-thoracic spine (an estimate from the anatomy texts).
PEDICLE_HALF_LENGTH_CM = 0.8
SPINAL_CANAL_HALF_WIDTH_CM = 0.8
SPINOUS_LENGTH_CM = 3.0
SPINOUS_HALF_WIDTH_CM = 0.3
SPINOUS_SLOPE_RAD = np.radians(50.0)
VERTEBRAL_HALF_HEIGHT_CM = 0.9  # bodies about 1.8 cm high between discs (Panjabi et al. 1991, see _vertebral_section)
CHEST_WALL_CM = 1.5  # intercostal muscles and ribs between the fat and the pleura (about 1-2 cm; an estimate)
CHEST_TAPER = 0.12  # the rib cage's width at the apex short of its widest (read off RG1: 490 against 560 pixels)
DOME_CURVATURE = 0.075  # the dome falls by this x (cm from its apex)^2 cm (read off RG1's right dome: 2.7 cm over 6)
DOME_SLOPE_CM = 2.0  # depth over which the lung base thins behind the diaphragm's curve
VESSEL_MIN_RADIUS_CM = 0.08  # smaller vessels are part of the parenchyma's texture
DETECTOR_GAP_CM = 1.5  # from the patient's skin to the detector's surface
SUBPIXEL = 0.25  # tubes whose half width is under this fraction of a pixel are left out (their mass is tiny)
PARENCHYMA_BETA = 3.0  # power-law exponent of projected anatomical background (Burgess et al. 2001)
PARENCHYMA_CONTRAST = 0.11  # relative variation of alveolar air density; calibrated by benchmarks/realism.py
SOFT_TISSUE_BETA = 3.0
SOFT_TISSUE_TEXTURE_CM = 0.4  # standard deviation of the soft-tissue thickness texture


@dataclass(frozen=True)
class Grid:
    """Pixel centres on the detector plane: ``rows`` x ``cols`` at ``spacing_cm``, centred on ``center_cm`` (y, x)."""

    rows: int
    cols: int
    spacing_cm: float
    center_cm: tuple[float, float] = (0.0, 0.0)

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Row coordinates (as a column vector) and column coordinates (as a row vector), in cm."""
        y = (np.arange(self.rows) - (self.rows - 1) / 2) * self.spacing_cm + self.center_cm[0]
        x = (np.arange(self.cols) - (self.cols - 1) / 2) * self.spacing_cm + self.center_cm[1]
        return y[:, None], x[None, :]


@dataclass(frozen=True)
class Anatomy:
    """One patient's body; drawn once per patient by :func:`random_anatomy`."""

    sex: str
    half_width_cm: float
    half_depth_cm: float
    fat_cm: float
    shoulder_y_cm: float
    lung_top_y_cm: float
    dome_right_y_cm: float
    dome_left_y_cm: float
    lung_half_width_cm: float
    heart_center: tuple[float, float, float]
    heart_axes: tuple[float, float, float]  # long and short semi-axes in the frontal plane, then its half depth
    breast_size: float
    rib_slope: float
    shift_cm: tuple[float, float]
    vessel_seed: int
    rib_seed: int
    heart_tilt: float  # radians from horizontal of the heart's long axis in the frontal plane, apex down and left


@dataclass(frozen=True)
class Findings:
    """Which findings are present in one study, with the side and size of each drawn at random."""

    present: frozenset[str] = frozenset()
    side: int = 1
    severity: float = 0.5
    location_seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.present) - set(FINDINGS)
        if unknown:
            raise ValueError(f"unknown findings {sorted(unknown)}; known: {FINDINGS}")


@dataclass
class PathMaps:
    """Path length (cm, at nominal density) of each material through each pixel."""

    soft_tissue: np.ndarray
    adipose: np.ndarray
    lung: np.ndarray
    bone: np.ndarray
    metal: np.ndarray
    body_mask: np.ndarray = field(repr=False)

    def stack(self) -> np.ndarray:
        """``(n_materials, rows, cols)`` in ``MATERIAL_NAMES`` order."""
        return np.stack([getattr(self, name) for name in MATERIAL_NAMES])

    def without_bone(self) -> PathMaps:
        """The same chest with its bone replaced by soft tissue: its twin without the bone's contrast."""
        return replace(self, soft_tissue=self.soft_tissue + self.bone, bone=np.zeros_like(self.bone))


def random_anatomy(rng: np.random.Generator, sex: str) -> Anatomy:
    """Draw a plausible adult chest: size, fat, lung height, heart size and position, diaphragm level."""
    male = sex == "M"
    half_width = rng.normal(17.0 if male else 15.5, 1.3)
    half_depth = rng.normal(11.5 if male else 10.5, 1.3)
    lung_top = rng.normal(-17.0, 1.0)
    dome_right = lung_top + rng.normal(27.0 if male else 25.0, 1.6)
    return Anatomy(
        sex=sex,
        half_width_cm=half_width,
        half_depth_cm=half_depth,
        fat_cm=float(np.clip(rng.gamma(3.0, 0.6), 0.3, 5.0)),
        shoulder_y_cm=lung_top - rng.uniform(0.5, 2.0),
        lung_top_y_cm=lung_top,
        dome_right_y_cm=dome_right,
        dome_left_y_cm=dome_right + rng.normal(1.5, 0.5),
        lung_half_width_cm=half_width * rng.uniform(0.40, 0.44),
        heart_center=(half_width * rng.uniform(0.08, 0.18), dome_right - rng.uniform(4.0, 5.5), rng.uniform(1.0, 3.0)),
        # The silhouette is a tilted oval, about 12.5 cm across (a cardiothoracic ratio near 0.45) and 11 cm high.
        heart_axes=(rng.normal(6.8, 0.5), rng.normal(5.0, 0.4), rng.normal(4.5, 0.4)),
        breast_size=0.0 if male else float(rng.uniform(0.6, 1.4)),
        rib_slope=rng.uniform(0.9, 1.3),
        shift_cm=(rng.normal(0.0, 1.2), rng.normal(0.0, 1.2)),
        vessel_seed=int(rng.integers(2**31)),
        rib_seed=int(rng.integers(2**31)),
        # The heart's long axis runs from its base, up and to the right, to the apex on the left dome (Gray's Anatomy,
        # 41st ed., ch. 57): some 25-45 degrees below horizontal in the frontal plane.
        heart_tilt=float(rng.uniform(0.45, 0.75)),
    )


def random_findings(rng: np.random.Generator, present: set[str] | frozenset[str]) -> Findings:
    return Findings(
        present=frozenset(present),
        side=int(rng.choice([-1, 1])),
        severity=float(rng.uniform(0.35, 1.0)),
        location_seed=int(rng.integers(2**31)),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Projection primitives. Each returns a path length (cm) over a sub-window of the grid, or None if it misses the grid.


@dataclass(frozen=True)
class _Projection:
    """Projection geometry: which 3-D axis runs across the image, the view's magnification law and the grid."""

    lateral: bool
    source_to_image_cm: float
    body_depth_to_detector_cm: float  # distance from the body's mid-plane to the detector
    toward_detector: int  # +1 when the anterior side faces the detector (PA), -1 when posterior does (AP)
    grid: Grid
    y: np.ndarray
    x: np.ndarray

    def magnification(self, depth_coordinate_cm: float) -> float:
        """``SID / (SID - object-to-image distance)`` for a structure at this depth coordinate (z, or x if lateral)."""
        distance = self.body_depth_to_detector_cm - self.toward_detector * depth_coordinate_cm
        return self.source_to_image_cm / (self.source_to_image_cm - max(distance, 0.5))

    @cached_property
    def body_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's position (down, across; cm) in the body's mid-plane: the grid's coordinates divided by the
        mid-plane's magnification. Computed once per projection."""
        scale = self.magnification(0.0)
        return self.y / scale, self.x / scale

    def in_plane(self, point: tuple[float, float, float]) -> tuple[float, float, float]:
        """(u, v, depth) of a 3-D point: u across the image, v down the image."""
        x, y, z = point
        return (-z, y, x) if self.lateral else (x, y, z)

    def window(self, u: float, v: float, half_u: float, half_v: float) -> tuple[slice, slice] | None:
        """The pixels a box centred on ``(u, v)`` with these half extents (cm) covers, or None if none."""
        (r0,), (r1,), (c0,), (c1,) = self.windows(*(np.array([value], dtype=float) for value in (u, v, half_u, half_v)))
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(int(r0), int(r1)), slice(int(c0), int(c1))

    def windows(
        self, u: np.ndarray, v: np.ndarray, half_u: np.ndarray, half_v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`window` of many boxes at once (first and stop row, first and stop column; empty where first >= stop):
        one array operation instead of one call per tube segment."""
        grid = self.grid
        y0 = grid.center_cm[0] - (grid.rows - 1) / 2 * grid.spacing_cm
        x0 = grid.center_cm[1] - (grid.cols - 1) / 2 * grid.spacing_cm
        r0 = np.maximum(np.floor((v - half_v - y0) / grid.spacing_cm).astype(np.int64), 0)
        r1 = np.minimum(np.ceil((v + half_v - y0) / grid.spacing_cm).astype(np.int64) + 1, grid.rows)
        c0 = np.maximum(np.floor((u - half_u - x0) / grid.spacing_cm).astype(np.int64), 0)
        c1 = np.minimum(np.ceil((u + half_u - x0) / grid.spacing_cm).astype(np.int64) + 1, grid.cols)
        return r0, r1, c0, c1

    def solid(
        self, center: tuple[float, float, float], axes: tuple[float, float, float]
    ) -> tuple[float, float, float, float, float, float]:
        """Where an upright solid (semi-axes along x, y, z) falls: its centre ``(u, v)`` and half extents across and
        down the image, magnified, its half depth along the beam, and its magnification."""
        u, v, depth = self.in_plane(center)
        a_x, a_y, a_z = axes
        half_u, half_depth = (a_z, a_x) if self.lateral else (a_x, a_z)
        m = self.magnification(depth)
        return u * m, v * m, half_u * m, a_y * m, half_depth, m


def _add_ellipsoid(
    target: np.ndarray,
    proj: _Projection,
    center: tuple[float, float, float],
    axes: tuple[float, float, float],
    weight: float = 1.0,
    *,
    rotation: np.ndarray | None = None,
) -> None:
    """Add ``weight`` x the chord length through an ellipsoid (semi-axes along x, y, z, or along ``rotation``'s
    columns: :func:`_add_oriented_ellipsoid`) to ``target``."""
    if rotation is not None:
        _add_oriented_ellipsoid(target, proj, center, axes, weight, rotation)
        return
    # Upright (most structures, the lungs among them): the same chord with the cross terms left out.
    u, v, half_u, half_v, half_depth, _ = proj.solid(center, axes)
    window = proj.window(u, v, half_u, half_v)
    if window is None:
        return
    rows, cols = window
    inside = 1.0 - ((proj.x[:, cols] - u) / half_u) ** 2 - ((proj.y[rows] - v) / half_v) ** 2
    target[rows, cols] += weight * 2.0 * half_depth * np.sqrt(np.clip(inside, 0.0, None))


def _add_oriented_ellipsoid(
    target: np.ndarray,
    proj: _Projection,
    center: tuple[float, float, float],
    axes: tuple[float, float, float],
    weight: float,
    rotation: np.ndarray,
) -> None:
    """:func:`_add_ellipsoid` turned by ``rotation`` (3 x 3, its columns the ellipsoid's axes in body coordinates).

    The ellipsoid is ``p.A.p <= 1`` with ``A = R diag(axes^-2) R^T``. Along the beam's axis ``b`` through a pixel at
    offset ``t`` from the centre (body cm, no component along ``b``) the chord is
    ``2 sqrt((A_b.t)^2 - A_bb (t.A.t - 1)) / A_bb``; the outline is the ellipse of ``A``'s Schur complement on the
    two other axes."""
    form = rotation @ np.diag(1.0 / np.asarray(axes, dtype=float) ** 2) @ rotation.T
    # Body axes of the beam, across and down the image: a lateral beam runs along x, with -z across.
    beam, across_axis, across_sign = (0, 2, -1.0) if proj.lateral else (2, 0, 1.0)
    plane = [across_axis, 1]
    outline = form[np.ix_(plane, plane)] - np.outer(form[plane, beam], form[beam, plane]) / form[beam, beam]
    half_across, half_down = np.sqrt(np.diag(np.linalg.inv(outline)))
    u, v, depth = proj.in_plane(center)
    m = proj.magnification(depth)
    window = proj.window(u * m, v * m, half_across * m, half_down * m)
    if window is None:
        return
    rows, cols = window
    across = across_sign * (proj.x[:, cols] - u * m) / m
    down = (proj.y[rows] - v * m) / m
    a_aa, a_ad, a_dd = form[across_axis, across_axis], form[across_axis, 1], form[1, 1]
    linear = form[beam, across_axis] * across + form[beam, 1] * down
    quadratic = a_aa * across**2 + 2.0 * a_ad * across * down + a_dd * down**2
    discriminant = linear**2 - form[beam, beam] * (quadratic - 1.0)
    target[rows, cols] += weight * 2.0 * np.sqrt(np.clip(discriminant, 0.0, None)) / form[beam, beam]


def _turned(angle: float, about: int) -> np.ndarray:
    """The rotation by ``angle`` (radians) about body axis ``about`` (0 x, 1 y, 2 z), from the next axis towards the
    one after it (about z: x towards +y, down the image)."""
    first, second = (about + 1) % 3, (about + 2) % 3
    rotation = np.eye(3)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation[[first, second, first, second], [first, second, second, first]] = (cos, cos, -sin, sin)
    return rotation


def _add_cylinder(
    target: np.ndarray,
    proj: _Projection,
    center: tuple[float, float, float],
    axes: tuple[float, float, float],
    weight: float = 1.0,
) -> None:
    """Add ``weight`` x the chord length through an upright elliptic cylinder (semi-axes along x and z of its section,
    half height along y): a vertebral body's shape. Each end ramps over ``END_PLATE_CONCAVITY_CM`` (or a pixel, if
    larger): end plates are dished, so the beam meets them over a band, not along one line."""
    u, v, half_u, half_v, half_depth, m = proj.solid(center, axes)
    ramp = max(proj.grid.spacing_cm, END_PLATE_CONCAVITY_CM * m)
    window = proj.window(u, v, half_u, half_v + ramp / 2)
    if window is None:
        return
    rows, cols = window
    across = np.sqrt(np.clip(1.0 - ((proj.x[:, cols] - u) / half_u) ** 2, 0.0, None))
    along = np.clip((half_v - np.abs(proj.y[rows] - v)) / ramp + 0.5, 0.0, 1.0)
    target[rows, cols] += weight * 2.0 * half_depth * across * along


def _add_tube(
    target: np.ndarray,
    proj: _Projection,
    points: np.ndarray,
    half_width_cm: float | np.ndarray,
    weight: float = 1.0,
    *,
    half_depth_cm: float | np.ndarray | None = None,
    shell_cm: float | np.ndarray = 0.0,
    shell_depth_cm: float | np.ndarray | None = None,
    core_fraction: float = 1.0,
) -> None:
    """Add ``weight`` x the chord through a tube along a 3-D polyline (``points``: (n, 3)).

    The cross-section is an ellipse: ``half_width_cm`` across the image, ``half_depth_cm`` along the beam (round when
    None), both per point or scalar. With ``shell_cm`` the tube is a bone: a cortical shell at full density round a
    trabecular core holding ``core_fraction`` of it (its bone volume fraction); the shell is ``shell_cm`` thick at the
    sides seen edge-on and ``shell_depth_cm`` (``shell_cm`` when None) where the beam crosses it, per point or scalar.
    """
    points = np.asarray(points, dtype=float)

    def per_segment(values: float | np.ndarray) -> np.ndarray:
        along = np.broadcast_to(np.asarray(values, dtype=float), (len(points),))
        return (along[:-1] + along[1:]) / 2

    widths = per_segment(half_width_cm)
    _add_segments(
        target,
        proj,
        points[:-1],
        points[1:],
        widths,
        weight,
        half_depth_cm=widths if half_depth_cm is None else per_segment(half_depth_cm),
        shell_cm=per_segment(shell_cm),
        shell_depth_cm=None if shell_depth_cm is None else per_segment(shell_depth_cm),
        core_fraction=core_fraction,
    )


# The most values one batch of tube segments computes at once, and how much larger than a segment's own window its
# batch's padded window may be.
SEGMENT_BATCH_VALUES = 1 << 18
SEGMENT_BATCH_PADDING = 2.0


def _segment_batches(chosen: np.ndarray, heights: np.ndarray, breadths: np.ndarray) -> list[np.ndarray]:
    """The segments ``chosen`` in batches of similar window shape (ordered by height, then breadth), each batch's padded
    window at most ``SEGMENT_BATCH_PADDING`` times the area of its smallest and its values at most
    ``SEGMENT_BATCH_VALUES``."""
    order = chosen[np.lexsort((breadths[chosen], heights[chosen]))]
    batches, start = [], 0
    shapes = list(zip(heights[order].tolist(), breadths[order].tolist(), strict=True))
    while start < len(order):
        tallest, widest = shapes[start]
        smallest = tallest * widest
        stop = start + 1
        while stop < len(order):
            height, breadth = shapes[stop]
            tallest, widest = max(tallest, height), max(widest, breadth)
            smallest = min(smallest, height * breadth)
            padded = tallest * widest
            if padded > SEGMENT_BATCH_PADDING * smallest or padded * (stop - start + 1) > SEGMENT_BATCH_VALUES:
                break
            stop += 1
        batches.append(order[start:stop])
        start = stop
    return batches


def _add_segments(
    target: np.ndarray,
    proj: _Projection,
    starts: np.ndarray,
    ends: np.ndarray,
    half_width_cm: np.ndarray,
    weight: float = 1.0,
    *,
    half_depth_cm: np.ndarray | None = None,
    shell_cm: float | np.ndarray = 0.0,
    shell_depth_cm: float | np.ndarray | None = None,
    core_fraction: float = 1.0,
) -> None:
    """Tube segments from ``starts`` to ``ends`` ((n, 3) each) with per-segment sections and shells (see
    :func:`_add_tube`).

    Segments thinner than ``SUBPIXEL`` of a pixel are left out: point sampling would catch them only by chance.
    """
    depths = half_width_cm if half_depth_cm is None else half_depth_cm
    shells = np.broadcast_to(np.asarray(shell_cm, dtype=float), (len(starts),))
    shell_depths = (
        shells if shell_depth_cm is None else np.broadcast_to(np.asarray(shell_depth_cm, float), shells.shape)
    )
    ends_uv = []
    for points in (starts, ends):
        depth = points[:, 0] if proj.lateral else points[:, 2]
        distance = np.maximum(proj.body_depth_to_detector_cm - proj.toward_detector * depth, 0.5)
        scale = proj.source_to_image_cm / (proj.source_to_image_cm - distance)
        across = -points[:, 2] if proj.lateral else points[:, 0]
        ends_uv.append((across * scale, points[:, 1] * scale, scale))
    (u0s, v0s, scales), (u1s, v1s, _) = ends_uv
    widths = half_width_cm * scales
    spacing = proj.grid.spacing_cm
    r0, r1, c0, c1 = proj.windows(
        (u0s + u1s) / 2, (v0s + v1s) / 2, np.abs(u1s - u0s) / 2 + widths, np.abs(v1s - v0s) / 2 + widths
    )
    chosen = np.flatnonzero((widths >= SUBPIXEL * spacing) & (r0 < r1) & (c0 < c1))
    if not len(chosen):
        return
    top, left = int(r0[chosen].min()), int(c0[chosen].min())
    bottom, right = int(r1[chosen].max()), int(c1[chosen].max())
    # Consecutive segments overlap at their joints: the tube's outer and inner chords are each the maximum over its
    # segments, so a joint is drawn once and no cortex shows inside the tube there. Tubes add to what ``target``
    # holds: where two cross, their paths add up.
    outer = np.zeros((bottom - top, right - left))
    inner = np.zeros_like(outer) if shells.any() else None  # vessel trees and soft tubes have no core
    heights, breadths = r1 - r0, c1 - c0
    for batch in _segment_batches(chosen, heights, breadths):
        # Each batch is one padded array: per pixel the same arithmetic as one segment at a time, so the same values
        # (the padding is never read), with a few array operations per batch instead of a dozen per segment.
        rows = np.minimum(r0[batch, None] + np.arange(heights[batch].max()), proj.grid.rows - 1)
        cols = np.minimum(c0[batch, None] + np.arange(breadths[batch].max()), proj.grid.cols - 1)
        u0, v0 = u0s[batch, None, None], v0s[batch, None, None]
        du, dv = (u1s - u0s)[batch, None, None], (v1s - v0s)[batch, None, None]
        a, b = widths[batch, None, None], depths[batch, None, None]
        length2 = du * du + dv * dv
        pu, pv = proj.x[0, cols][:, None, :] - u0, proj.y[rows, 0][:, :, None] - v0
        moving = length2 > 0
        along = np.minimum(np.maximum((pu * du + pv * dv) / np.where(moving, length2, 1.0), 0.0), 1.0)
        t = np.where(moving, along, 0.0)
        distance2 = (pu - t * du) ** 2 + (pv - t * dv) ** 2
        chord = 2.0 * b * np.sqrt(np.maximum(1.0 - distance2 / (a * a), 0.0))
        # Each segment's window of the batch into the tube's maximum, as one unbuffered scatter (the maximum does not
        # depend on the order segments come in).
        offset_rows, offset_cols = np.ogrid[: rows.shape[1], : cols.shape[1]]
        inside = (offset_rows < heights[batch, None, None]) & (offset_cols < breadths[batch, None, None])
        flat = (rows[:, :, None] - top) * outer.shape[1] + (cols[:, None, :] - left)
        np.maximum.at(outer.ravel(), flat[inside], chord[inside])
        cored = shells[batch] > 0
        if cored.any():
            inner_a = np.maximum(a - (shells * scales)[batch, None, None], 1e-3)
            inner_b = np.maximum(b - shell_depths[batch, None, None], 1e-3)
            core = 2.0 * inner_b * np.sqrt(np.maximum(1.0 - distance2 / (inner_a * inner_a), 0.0))
            with_core = inside & cored[:, None, None]
            np.maximum.at(inner.ravel(), flat[with_core], core[with_core])
    if inner is not None:
        outer -= (1.0 - core_fraction) * inner
    target[top:bottom, left:right] += weight * outer


def _add_bone(
    target: np.ndarray,
    proj: _Projection,
    center: tuple[float, float, float],
    axes: tuple[float, float, float],
    shell_cm: float = CORTEX_CM,
    core_fraction: float = TRABECULAR_FRACTION,
    *,
    solid: Callable[..., None] = _add_ellipsoid,
) -> None:
    """A bone of the shape ``solid`` draws (an ellipsoid, or a vertebral body's :func:`_add_cylinder`): a cortical
    shell of ``shell_cm`` round a trabecular core (see :func:`_add_tube`)."""
    solid(target, proj, center, axes)
    inner = tuple(max(a - shell_cm, 0.05) for a in axes)
    solid(target, proj, center, inner, -(1.0 - core_fraction))


def _torso(proj: _Projection, anatomy: Anatomy, inset_cm: float) -> np.ndarray:
    """Chord through the torso: an elliptic cylinder along y, widest at the lower ribs, ``CHEST_TAPER`` narrower at
    the lung apex and narrowing to the neck above the shoulders; magnified as its mid-plane is, like everything
    inside it."""
    y, across = proj.body_plane
    # The rib cage widens from the apex down to the lower ribs, so the lateral chest wall is convex, not vertical.
    widest_y = anatomy.dome_right_y_cm - 3.0
    below_apex = np.clip((widest_y - y) / (widest_y - anatomy.lung_top_y_cm), 0.0, 1.0)
    a = (anatomy.half_width_cm - inset_cm) * (1.0 - CHEST_TAPER * below_apex**2)
    c = anatomy.half_depth_cm - inset_cm
    taper = 1.0 / (1.0 + np.exp((anatomy.shoulder_y_cm - y) / 1.2))  # 0 at the neck, 1 below the shoulders
    neck = 6.0 - inset_cm
    half_across = (c if proj.lateral else a) * taper + neck * (1 - taper)
    half_along = (a if proj.lateral else c) * taper + neck * (1 - taper)
    half_across = np.clip(half_across, 0.1, None)
    return 2.0 * half_along * np.sqrt(np.clip(1.0 - (across / half_across) ** 2, 0.0, None))


def _rib(anatomy: Anatomy, side: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rib ``index`` (0 = first rib) of one side: its 3-D centre line, and at each point the half width and half depth
    of its section and the thickness of its cortex at the sides seen edge-on and where the beam crosses it.

    Each rib is a ring round the chest from its vertebra (azimuth 0, posterior) past the lateral wall (pi/2) to the
    costochondral junction (about 0.85 pi, near the midclavicular line); the cartilage that joins it to the sternum has
    soft-tissue density and is not drawn. The anterior end lies 3-4 vertebral levels below the posterior one, and the
    rib comes down along :func:`_rib_descent`: in a frontal view the posterior rib arches out from the spine and falls
    most steeply as it reaches the wall, and the anterior rib runs down and in (Gray's Anatomy, 41st ed. (2016),
    ch. 54). The upper ribs are short, tightly curved rings; ribs widen to the seventh.

    The section is a flattened band, about 1.3 cm high and 0.6 cm thick at mid-rib (an ellipse of the size of the
    mid-rib total section areas on CT: Holcombe et al., "Cross-sectional properties of rib geometry from an adult
    population", Front. Bioeng. Biotechnol. 11 (2023) 1158242; the ellipse's proportions are an estimate). The beam
    crosses its thin side behind and in front, and runs along its height at the lateral wall, where ribs show densest.
    Between the vertebra and the rib's angle the neck is rounder, ``POSTERIOR_THICKENING`` times as thick, so the
    medial posterior ribs show as bands; in front of the wall the rib flattens and broadens towards its sternal end,
    which takes the cartilage (Gray's Anatomy, ch. 54), and its cortex thins from the mid-rib maximum (Holcombe et
    al., "Regional maps of rib cortical bone thickness and cross-sectional geometry", J. Anat. 235 (2019) 883):
    ``ANTERIOR_RIB_BROADENING``, ``ANTERIOR_THICKNESS_SHARE`` and ``ANTERIOR_CORTEX_SHARE`` at the end, so the
    anterior ribs show fainter than the posterior ones, as on radiographs. The cortex is thickest on the pleural face
    and thinner at the upper and lower edges (Holcombe and Derstine, "Rib cortical bone thickness variation in adults
    by age and sex", J. Anat. 241 (2022) 1344): ``RIB_EDGE_CORTEX_SHARE`` of the faces'. Behind and in front the beam
    crosses the faces and sees the edges side-on; at the lateral wall the other way round.

    No two ribs are alike: each rib's drop, reach and height vary by a few per cent about the patient's pattern, left
    and right independently (rib shape varies between levels, sides and people: Holcombe, Wang and Grotberg, "The
    effect of age and demographics on rib shape", J. Anat. 231 (2017) 229; the spreads here are small guesses).
    """
    drop_factor, reach_factor, height_factor = np.random.default_rng([anatomy.rib_seed, side + 1, index]).normal(
        1.0, RIB_SHAPE_SPREAD
    )
    azimuth = np.linspace(0.0, 0.85 * np.pi, 28)
    ring = 0.5 + 0.5 * min(index, 6) / 6  # 0.5 for the first rib, 1 from the seventh on
    wall_x = (anatomy.half_width_cm - anatomy.fat_cm - 1.4) * (0.55 + 0.45 * ring) * reach_factor
    wall_z = anatomy.half_depth_cm - anatomy.fat_cm - 1.2
    x = side * (1.8 + (wall_x - 1.8) * np.sin(azimuth))
    z = -wall_z * np.cos(azimuth) * (0.6 + 0.4 * ring)
    drop = anatomy.rib_slope * (3.0 + 5.5 * ring) * drop_factor  # the anterior end 3-4 vertebral levels lower
    y = anatomy.lung_top_y_cm - 1.0 + index * RIB_SPACING_CM + drop * _rib_descent(azimuth)
    facing_beam = np.sin(azimuth) ** 2  # 0 behind, 1 at the lateral wall
    anterior = np.clip((azimuth - 0.4 * np.pi) / (0.3 * np.pi), 0.0, 1.0)  # 0 behind the wall, 1 from 0.7 pi on
    height = (0.65 + 0.1 * (index == 0)) * height_factor * (1.0 + (ANTERIOR_RIB_BROADENING - 1.0) * anterior)
    posterior = np.clip(1.0 - azimuth / (0.3 * np.pi), 0.0, 1.0)  # 1 at the vertebra, 0 past the rib's angle
    thickening = 1.0 + (POSTERIOR_THICKENING - 1.0) * posterior
    thickness = 0.3 * thickening * (1.0 - (1.0 - ANTERIOR_THICKNESS_SHARE) * anterior)
    half_width = height * (1 - facing_beam) + thickness * facing_beam
    half_depth = thickness * (1 - facing_beam) + 0.7 * height * facing_beam
    cortex = CORTEX_CM * (1.0 - (1.0 - ANTERIOR_CORTEX_SHARE) * anterior)  # of the pleural and cutaneous faces
    edges = cortex * RIB_EDGE_CORTEX_SHARE  # of the upper and lower edges
    cortex_across = edges * (1 - facing_beam) + cortex * facing_beam
    cortex_along = cortex * (1 - facing_beam) + edges * facing_beam
    return np.stack([x, y, z], axis=1), half_width, half_depth, cortex_across, cortex_along


_DESCENT_CURVE = PchipInterpolator(*RIB_DESCENT)  # monotone between the knots: no overshoot between them


def _rib_descent(azimuth: np.ndarray) -> np.ndarray:
    """How far down a rib has come at each azimuth, as a share of its whole drop: the posterior rib arches, rising a
    little from its vertebra and falling most steeply as it reaches the lateral wall, and the anterior rib runs down
    and in at a gentler slope."""
    return _DESCENT_CURVE(azimuth / np.pi)


def _lung_geometry(anatomy: Anatomy, side: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Centre and semi-axes of one lung's ellipsoid (``side`` -1 right, +1 left)."""
    half_height = (anatomy.dome_right_y_cm - anatomy.lung_top_y_cm) / 2 + 3.0
    x_center = side * (anatomy.lung_half_width_cm + 2.2)
    center = (x_center, anatomy.lung_top_y_cm + half_height - 0.5, -1.0)
    axes = (anatomy.lung_half_width_cm, half_height, anatomy.half_depth_cm - anatomy.fat_cm - 2.0)
    return center, axes


@lru_cache(maxsize=16)
def _vessel_segments(anatomy: Anatomy, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pulmonary arteries (from the hilum, to the upper, middle and lower zones) and veins (to the left atrium).

    Starts, ends ((n, 3), cm) and radii (cm) of every segment. Cached: the same patient seen on several units or
    views has the same trees.
    """
    rng = np.random.default_rng([anatomy.vessel_seed, side + 1])
    (cx, cy, cz), (ax, ay, az) = _lung_geometry(anatomy, side)
    dome = anatomy.dome_right_y_cm if side < 0 else anatomy.dome_left_y_cm

    def inside(point: np.ndarray) -> bool:
        x, y, z = point
        return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 < 0.92 and y < dome - 0.3

    hilum = np.array([side * 4.0, anatomy.lung_top_y_cm + 9.0, 0.0])
    atrium = np.array([side * 3.5, anatomy.lung_top_y_cm + 12.5, -1.5])
    # The lower lobe (descending) artery is the largest, about 13 mm across (the right one is under 16 mm on normal
    # PA radiographs: Chang, "The normal roentgenographic measurement of the right descending pulmonary artery in 1,085
    # cases", AJR 87 (1962) 929); the others a little smaller.
    roots = [
        (hilum, (side * 0.45, -1.0, -0.1), 0.5),  # upper lobe artery
        (hilum, (side * 1.0, 0.15, 0.2), 0.45),  # middle zone
        (hilum + np.array([0.0, 1.0, 0.0]), (side * 0.45, 1.0, -0.3), 0.65),  # lower lobe artery, the largest
        (atrium, (side * 1.0, -0.45, 0.3), 0.5),  # superior pulmonary vein
        (atrium, (side * 1.0, 0.35, -0.3), 0.5),  # inferior pulmonary vein
    ]
    segments = []
    for root, direction, radius in roots:
        segments += grow_tree(root, np.array(direction), radius, inside, rng, min_radius_cm=VESSEL_MIN_RADIUS_CM)
    starts, ends, radii = zip(*segments, strict=True)
    return np.array(starts), np.array(ends), np.array(radii)


def _airways(center: np.ndarray, toward: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Small bronchi in a consolidated region, for air bronchograms: a few branching air tubes from the hilum side."""
    segments = []
    stack = [(center - 2.5 * toward, toward, 0.22, 0)]
    while stack:
        start, direction, radius, depth = stack.pop()
        end = start + direction * rng.uniform(1.5, 2.5)
        segments.append((np.stack([start, end]), radius))
        if depth < 3:
            for sign in (-1, 1):
                turned = direction + sign * rng.normal(0.45, 0.15, size=3) * np.array([0.5, 1.0, 0.5])
                stack.append((end, turned / np.linalg.norm(turned), radius * 0.8, depth + 1))
    return segments


def _mid_plane_to_detector_cm(anatomy: Anatomy, lateral: bool) -> float:
    """Distance from the body's mid-plane to the detector: half the body along the beam plus the gap to the cassette."""
    return (anatomy.half_width_cm if lateral else anatomy.half_depth_cm) + DETECTOR_GAP_CM


def body_across_detector(anatomy: Anatomy, view: str, source_to_image_cm: float) -> tuple[float, float]:
    """Centre and half width (cm on the detector) of the body across the image, magnified as its mid-plane is; on an
    AP the arms lie beside the chest and count as body."""
    lateral = view == "LATERAL"
    magnification = source_to_image_cm / (source_to_image_cm - _mid_plane_to_detector_cm(anatomy, lateral))
    half_width = anatomy.half_depth_cm if lateral else anatomy.half_width_cm
    if view == "AP":
        half_width = abs(_upper_arm(anatomy, 1)[0, 0]) + _arm_radius_cm(anatomy)
    return anatomy.shift_cm[1] * magnification, half_width * magnification


def project(
    anatomy: Anatomy,
    findings: Findings,
    grid: Grid,
    *,
    view: str,
    source_to_image_cm: float,
) -> PathMaps:
    """Project the phantom with its findings onto ``grid``.

    Parameters
    ----------
    view
        ``PA``, ``AP`` (frontal) or ``LATERAL`` (beam right to left).
    source_to_image_cm
        Source-to-image distance, which with each structure's depth sets its magnification.
    """
    if view not in ("PA", "AP", "LATERAL"):
        raise ValueError(f"view must be PA, AP or LATERAL, got {view!r}")
    # Moving the patient by ``shift_cm`` is moving the grid the other way.
    grid = Grid(
        grid.rows,
        grid.cols,
        grid.spacing_cm,
        (grid.center_cm[0] - anatomy.shift_cm[0], grid.center_cm[1] - anatomy.shift_cm[1]),
    )
    y, x = grid.axes()
    lateral = view == "LATERAL"
    proj = _Projection(
        lateral=lateral,
        source_to_image_cm=source_to_image_cm,
        body_depth_to_detector_cm=_mid_plane_to_detector_cm(anatomy, lateral),
        toward_detector={"PA": 1, "AP": -1, "LATERAL": 1}[view],
        grid=grid,
        y=y,
        x=x,
    )
    shape = (grid.rows, grid.cols)
    finding_rng = np.random.default_rng(findings.location_seed)
    present = findings.present
    severity = findings.severity
    side = findings.side
    # The patient's texture, at each pixel's position in the body (the mid-plane's magnification).
    v_body, u_body = proj.body_plane
    parenchyma = sample_field(power_law_field(anatomy.vessel_seed, PARENCHYMA_BETA), v_body, u_body)
    tissue = sample_field(power_law_field(anatomy.vessel_seed + 1, SOFT_TISSUE_BETA), v_body, u_body)

    body = _torso(proj, anatomy, 0.0)
    inner = _torso(proj, anatomy, anatomy.fat_cm)
    adipose = body - inner
    soft_extra = np.zeros(shape)
    for s in (-1, 1):
        # Shoulders beside the upper chest; the arms are rolled forward out of a PA's field, as technologists ask.
        shoulder = (s * (anatomy.half_width_cm + 0.5), anatomy.shoulder_y_cm + 3.0, -1.0)
        _add_ellipsoid(soft_extra, proj, shoulder, (4.0, 5.0, 5.0))
    if view == "AP":
        # At the bedside the arms lie beside the chest, inside the field (the humerus is drawn with the skeleton).
        for s in (-1, 1):
            _add_tube(soft_extra, proj, _upper_arm(anatomy, s), _arm_radius_cm(anatomy))
    if anatomy.breast_size > 0:
        for s in (-1, 1):
            size = anatomy.breast_size
            center = (s * anatomy.half_width_cm * 0.55, anatomy.dome_right_y_cm - 1.0, anatomy.half_depth_cm - 1.0)
            # Mostly fat with some glandular tissue; the PA position flattens it against the detector.
            _add_ellipsoid(adipose, proj, center, (6.0 * size, 5.0 * size, 3.0 * size), 0.7)
            _add_ellipsoid(soft_extra, proj, center, (6.0 * size, 5.0 * size, 3.0 * size), 0.3)

    # Lungs, clipped below by the diaphragm domes (the right dome is higher: the liver lies under it).
    lung = np.zeros(shape)
    pleural_air = np.zeros(shape)
    for s, dome_y in ((-1, anatomy.dome_right_y_cm), (1, anatomy.dome_left_y_cm)):
        if "atelectasis" in present and s == side:
            dome_y -= 1.2 * severity  # volume loss pulls the hemidiaphragm up
        one = np.zeros(shape)
        center, axes = _lung_geometry(anatomy, s)
        x_center = center[0]
        _add_ellipsoid(one, proj, center, axes)
        # The dome rises towards the lung's centre (frontal) or its middle front-to-back (lateral).
        dome = dome_y + (0.06 * (proj.x + 1.0) ** 2 if lateral else DOME_CURVATURE * (proj.x - x_center) ** 2)
        # Below the dome's apex the lung thins out over the curved diaphragm (the posterior sulci reach lowest).
        above_dome = np.clip((dome + DOME_SLOPE_CM - proj.y) / DOME_SLOPE_CM, 0.0, 1.0) ** 1.5
        one *= above_dome
        if "pneumothorax" in present and s == side:
            # The collapsed lung pulls away from the apex and the lateral wall; the pleural space it leaves holds air.
            shrink = 0.75 - 0.2 * severity
            collapsed = np.zeros(shape)
            _add_ellipsoid(
                collapsed,
                proj,
                (x_center - s * 1.0, center[1] + 2.0, -1.0),
                (axes[0] * shrink, axes[1] * (shrink + 0.12), axes[2] * shrink),
            )
            collapsed *= above_dome
            pleural_air += np.clip(one - collapsed, 0.0, None)
            one = collapsed
        lung += one

    heart_scale = 1.0
    if "cardiomegaly" in present:
        heart_scale = 1.18 + 0.2 * severity
    heart = np.zeros(shape)
    hx, hy, hz = anatomy.heart_center
    ax, ay, az = (a * heart_scale for a in anatomy.heart_axes)
    _add_ellipsoid(
        heart,
        proj,
        (hx * heart_scale, hy - (heart_scale - 1) * 2.0, hz),
        (ax, ay, az),
        rotation=_turned(anatomy.heart_tilt, 2),
    )
    mediastinum = np.zeros(shape)
    widening = 1.0 + (0.5 * severity if "enlarged_cardiomediastinum" in present else 0.0)
    _add_ellipsoid(mediastinum, proj, (0.3, anatomy.lung_top_y_cm + 6.0, 0.5), (3.6 * widening, 7.5, 4.0))
    _add_ellipsoid(
        mediastinum, proj, (2.5, anatomy.lung_top_y_cm + 5.0, -0.5), (1.8 * widening, 1.6, 1.8)
    )  # aortic knob
    # The lungs fill the rib cage and no more: inside the chest wall (fat, muscle and ribs).
    lung = np.minimum(lung, _torso(proj, anatomy, anatomy.fat_cm + CHEST_WALL_CM))
    lung = np.clip(lung - heart - mediastinum, 0.0, None)

    # Pulmonary vessels: blood-filled tubes that take the place of alveolar air.
    vessels = np.zeros(shape)
    for s in (-1, 1):
        starts, ends, radii = _vessel_segments(anatomy, s)
        _add_segments(vessels, proj, starts, ends, radii)
    # Parenchyma: alveolar air density varies with a power-law texture (capillaries, acini, small vessels).
    lung = lung * np.clip(1.0 + PARENCHYMA_CONTRAST * parenchyma, 0.3, None)
    vessels = np.minimum(vessels, lung)
    # The body's soft tissue is what the aerated lung leaves; vessels and findings below take lung path and turn it
    # into soft tissue (counted once, at the end), so every pixel keeps its mass.
    aerated = lung.copy()  # the in-place steps below must not change it

    # Findings that fill alveoli or pleura with fluid: a fraction of each pixel's air path becomes water-like tissue.
    filled = np.zeros(shape)
    airways = np.zeros(shape)
    if "consolidation" in present or "pneumonia" in present:
        # Patchy air-space filling: the region's fluid fraction follows the parenchyma's texture, and the bronchi
        # through it stay full of air (air bronchograms).
        region = np.zeros(shape)
        center = np.array(
            [
                side * anatomy.lung_half_width_cm * finding_rng.uniform(0.8, 1.6),
                anatomy.lung_top_y_cm + finding_rng.uniform(8.0, 17.0),
                finding_rng.uniform(-3.0, 3.0),
            ]
        )
        size = 2.5 + 3.0 * severity
        _add_ellipsoid(region, proj, tuple(center), (size, size * 1.2, size))
        patches = np.clip(0.75 + 0.5 * sample_field(power_law_field(findings.location_seed, 2.5), v_body, u_body), 0, 1)
        filled += np.clip(region / (2 * size), 0.0, 1.0) * patches * (0.6 + 0.35 * severity)
        toward = np.array([side * 1.0, 0.2, 0.0]) / np.hypot(1.0, 0.2)
        for points, radius in _airways(center, toward, finding_rng):
            _add_tube(airways, proj, points, radius)
    if "edema" in present:
        # Perihilar haze (alveolar) and a fine reticular net with Kerley B lines at the bases (interstitial). The net
        # runs along a smooth field's zero lines with a soft profile: thickened septa seen through the lung's depth
        # add up to a faint mesh, not to sharp lines.
        net = sample_field(power_law_field(findings.location_seed + 1, 3.0), v_body, u_body)
        reticular = np.exp(-((net / 0.25) ** 2))
        for s in (-1, 1):
            region = np.zeros(shape)
            _add_ellipsoid(region, proj, (s * 5.0, anatomy.lung_top_y_cm + 10.0, 0.0), (7.0, 9.0, 6.0))
            filled += np.clip(region / 12.0, 0.0, 1.0) * 0.3 * severity
            dome = anatomy.dome_right_y_cm if s < 0 else anatomy.dome_left_y_cm
            wall = s * (anatomy.lung_half_width_cm * 2 + 1.8)
            for k in range(int(4 + 6 * severity)):
                level = dome - 0.6 - 0.7 * k - finding_rng.uniform(0, 0.3)
                line = np.array([[wall, level, 0.0], [wall - s * finding_rng.uniform(1.0, 2.0), level, 0.0]])
                _add_tube(filled, proj, line, 0.05, 0.25 * severity, half_depth_cm=3.0)
        filled += reticular * 0.06 * severity
    if "atelectasis" in present:
        region = np.zeros(shape)
        base_y = (anatomy.dome_right_y_cm if side < 0 else anatomy.dome_left_y_cm) - 3.0
        _add_ellipsoid(
            region, proj, (side * anatomy.lung_half_width_cm * 1.1, base_y, -1.0), (5.0, 1.0 + severity, 5.0)
        )
        filled += np.clip(region / 4.0, 0.0, 1.0) * 0.8
    if "pleural_effusion" in present:
        dome_y = anatomy.dome_right_y_cm if side < 0 else anatomy.dome_left_y_cm
        depth = 2.0 + 5.0 * severity
        if view == "AP":
            # Supine: the fluid layers posteriorly and veils the whole hemithorax, denser towards the base.
            veil = np.clip((proj.y - anatomy.lung_top_y_cm) / (dome_y - anatomy.lung_top_y_cm), 0.0, 1.0)
            lateral_side = (proj.x * side) > 0
            filled += veil * lateral_side * 0.35 * severity
        else:
            # Upright: a meniscus that climbs the lateral wall and blunts the costophrenic angle.
            wall_distance = np.abs(np.abs(proj.x) - (anatomy.lung_half_width_cm * 2 + 2.0))
            level = dome_y - depth + 0.15 * np.clip(6.0 - wall_distance, 0.0, None) ** 1.5
            same_side = (proj.x * side) > 0 if not lateral else np.ones_like(proj.x, dtype=bool)
            filled += np.clip((proj.y - level) / 1.5, 0.0, 1.0) * same_side
    if "pleural_other" in present:
        rim = np.zeros(shape)
        wall = side * (anatomy.half_width_cm - anatomy.fat_cm - 1.5)
        points = np.array([[wall, anatomy.lung_top_y_cm + k, -2.0] for k in np.linspace(3, 18, 8)])
        _add_tube(rim, proj, points, 0.6 + 0.6 * severity)
        lung = np.clip(lung - rim, 0.0, None)
    filled = np.clip(filled, 0.0, 0.95) * (1.0 - np.clip(airways / 0.4, 0.0, 0.9))
    fluid = np.clip(lung - vessels, 0.0, None) * filled
    lung = np.clip(lung - vessels - fluid, 0.0, None)

    if "lung_lesion" in present:
        # A lobulated nodule: a few overlapping spheres round one centre.
        nodule = np.zeros(shape)
        r = 0.6 + 1.4 * severity
        center = np.array(
            [
                side * anatomy.lung_half_width_cm * finding_rng.uniform(0.9, 1.5),
                anatomy.lung_top_y_cm + finding_rng.uniform(4.0, 14.0),
                finding_rng.uniform(-3.0, 3.0),
            ]
        )
        _add_ellipsoid(nodule, proj, tuple(center), (r, r, r))
        for _lobe in range(3):
            offset = finding_rng.normal(0.0, 0.45 * r, size=3)
            lobe = np.zeros(shape)
            _add_ellipsoid(lobe, proj, tuple(center + offset), (0.6 * r,) * 3)
            np.maximum(nodule, lobe, out=nodule)
        nodule = np.minimum(nodule, lung)
        lung -= nodule

    broken_rib = (side, 3 + int(finding_rng.integers(5))) if "fracture" in present else None
    bone = _skeleton(proj, anatomy, broken_rib, displacement_cm=0.3 + 0.4 * severity, arms_down=view == "AP")

    # Air outside the lungs: a pneumothorax's pleural space, the trachea and the gastric bubble under the left dome.
    air = pleural_air
    trachea = np.array([[0.0, anatomy.shoulder_y_cm - 8.0, 1.0], [0.2, anatomy.lung_top_y_cm + 7.0, 0.5]])
    _add_tube(air, proj, trachea, 0.9)
    _add_ellipsoid(air, proj, (7.0, anatomy.dome_left_y_cm + 3.5, 1.0), (2.5, 1.8, 2.5))

    metal = np.zeros(shape)
    if "support_devices" in present:
        # ECG electrodes on the skin and a central venous line with its radio-opaque wire.
        for _k in range(3):
            electrode = (
                finding_rng.uniform(-12, 12),
                anatomy.lung_top_y_cm + finding_rng.uniform(0, 18),
                anatomy.half_depth_cm,
            )
            _add_ellipsoid(metal, proj, electrode, (0.6, 0.6, 0.05))
        line = np.array([[-6.0 + 0.5 * t, anatomy.shoulder_y_cm - 2.0 + 1.0 * t, 1.0] for t in np.linspace(0, 7, 8)])
        _add_tube(metal, proj, line, 0.08)
        _add_tube(soft_extra, proj, line, 0.25)

    # Soft tissue: muscle and fat thickness vary with the patient's texture; bone and air take its place in the body.
    texture = SOFT_TISSUE_TEXTURE_CM * tissue * np.clip(body / 10.0, 0.0, 1.0)
    filled_in = aerated - lung
    soft = np.clip(body - adipose - aerated - bone - air + texture, 0.0, None) + soft_extra + filled_in
    return PathMaps(
        soft_tissue=soft.astype(np.float32),
        adipose=np.clip(adipose, 0.0, None).astype(np.float32),
        lung=np.clip(lung, 0.0, None).astype(np.float32),
        bone=np.clip(bone, 0.0, None).astype(np.float32),
        metal=metal.astype(np.float32),
        body_mask=(body + soft_extra) > 0,
    )


def _vertebral_section(level: int) -> tuple[float, float]:
    """Half width and half depth (cm) of the vertebral body ``level`` levels below the first drawn (near T1): end
    plates about 2.6 cm wide and 1.6 cm deep at T1, 3.9 and 2.8 cm at T12 (Panjabi et al., "Thoracic human vertebrae:
    quantitative three-dimensional anatomy", Spine 16 (1991) 888)."""
    return 1.3 + 0.06 * level, 0.8 + 0.055 * level


def _pedicle_section(level: int) -> tuple[float, float]:
    """Half width and half height (cm) of the pedicles ``level`` levels below the first drawn (near T1): about 9 mm
    wide at T1, narrowest (4.5 mm) at T4 and 8.3 mm at T12 (Kaur et al., J. Clin. Orthop. Trauma 7 (2016) 101, CT of
    600 vertebrae); about 10 mm high at T1 and 17 mm at T12 (Egwu et al., J. Anat. Soc. India 68 (2019) 110)."""
    width_mm = np.interp(level, (0, 3, 11), (9.3, 4.5, 8.3))
    height_mm = np.interp(level, (0, 11), (9.8, 17.3))
    return width_mm / 20.0, height_mm / 20.0


def _arm_radius_cm(anatomy: Anatomy) -> float:
    """Upper arm radius, scaled with the chest: mid-upper-arm circumferences of adults are about 31-34 cm (Fryar et al.,
    "Anthropometric reference data for children and adults: United States, 2015-2018", Vital Health Stat 3(46), 2021),
    a radius of about 0.3 chest half widths."""
    return 0.3 * anatomy.half_width_cm


def _upper_arm(anatomy: Anatomy, side: int) -> np.ndarray:
    """Centre line of an upper arm lying beside the chest, from the shoulder to the elbow (humerus about 30 cm)."""
    x = side * (anatomy.half_width_cm + 1.0 + _arm_radius_cm(anatomy))
    return np.array([[x, anatomy.shoulder_y_cm + 3.0, -1.0], [x * 1.04, anatomy.shoulder_y_cm + 31.0, -2.0]])


def _skeleton(
    proj: _Projection,
    anatomy: Anatomy,
    broken_rib: tuple[int, int] | None,
    *,
    displacement_cm: float,
    arms_down: bool,
) -> np.ndarray:
    """Bone path (cm of cortical bone): spine, ribs, clavicles, scapulae, humeral heads and sternum; ``broken_rib``
    (side, index) has a fracture whose lateral part is displaced down by ``displacement_cm``.

    Every bone is a cortical shell of ``CORTEX_CM`` round trabecular bone of ``TRABECULAR_FRACTION`` (adult bone volume
    fractions of rib and vertebral trabecular bone are 0.1-0.25; ICRP Publication 70, "Basic anatomical and
    physiological data for use in radiological protection: the skeleton", 1995).
    """
    bone = np.zeros((proj.grid.rows, proj.grid.cols))
    depth = anatomy.half_depth_cm
    for level in range(14):
        y_level = anatomy.shoulder_y_cm - 3.0 + level * RIB_SPACING_CM
        # Vertebral body: a flat-ended cylinder, a thin shell round sparse trabecular bone, widening and deepening
        # down the column; its back stays in line with the others.
        half_width, half_depth = _vertebral_section(level)
        _add_bone(
            bone,
            proj,
            (0.0, y_level, -depth + 3.7 + half_depth),
            (half_width, VERTEBRAL_HALF_HEIGHT_CM, half_depth),
            VERTEBRAL_CORTEX_CM,
            VERTEBRAL_TRABECULAR_FRACTION,
            solid=_add_cylinder,
        )
        back = -depth + 3.7  # the vertebral body's posterior wall
        pedicle_half_width, pedicle_half_height = _pedicle_section(level)
        # Pedicles converge towards the body, 35 degrees off the sagittal plane at T1 and -10 at T12 (Kaur et al.
        # 2016), so a frontal beam crosses their walls obliquely: the rims of their ovals fade as the angle grows.
        pedicle_angle = np.radians(np.interp(level, (0, 11), (35.4, -9.8)))
        for s in (-1, 1):
            # Pedicles run back from the body's upper half on either side of the canal; a frontal beam sees them
            # end-on, as the ovals of the "owl's eyes".
            _add_bone(
                bone,
                proj,
                (s * (SPINAL_CANAL_HALF_WIDTH_CM + pedicle_half_width), y_level - 0.3, back - PEDICLE_HALF_LENGTH_CM),
                (pedicle_half_width, pedicle_half_height, PEDICLE_HALF_LENGTH_CM),
                solid=partial(_add_ellipsoid, rotation=_turned(-s * pedicle_angle, 1)),
            )
            process = np.array([[s * 1.0, y_level - 0.3, -depth + 3.2], [s * 3.2, y_level - 0.6, -depth + 3.0]])
            _add_tube(bone, proj, process, 0.45, shell_cm=CORTEX_CM, core_fraction=TRABECULAR_FRACTION)
        # The spinous process slopes down and back from the laminae over the body below: a slim bar in the midline.
        root = np.array([0.0, y_level + 0.3, back - 1.3])
        slope = np.array([0.0, np.sin(SPINOUS_SLOPE_RAD), -np.cos(SPINOUS_SLOPE_RAD)])
        spinous = np.array([root, root + SPINOUS_LENGTH_CM * slope])
        _add_tube(bone, proj, spinous, SPINOUS_HALF_WIDTH_CM, shell_cm=CORTEX_CM, core_fraction=TRABECULAR_FRACTION)
    for s in (-1, 1):
        for index in range(11):
            points, half_width, half_depth, cortex_across, cortex_along = _rib(anatomy, s, index)
            parts = [(slice(None), 0.0)]
            if broken_rib == (s, index):
                # A displaced fracture: the lateral part of the rib steps down across a gap.
                parts = [(slice(0, 9), 0.0), (slice(10, None), displacement_cm)]
            for part, step in parts:
                _add_tube(
                    bone,
                    proj,
                    points[part] + np.array([0.0, step, 0.0]),
                    half_width[part],
                    half_depth_cm=half_depth[part],
                    shell_cm=cortex_across[part],
                    shell_depth_cm=cortex_along[part],
                    core_fraction=TRABECULAR_FRACTION,
                )
        clavicle = np.array(
            [
                [s * t, anatomy.shoulder_y_cm + 1.0 - 0.12 * t + 0.6 * np.sin(t / 3.0), 2.0 - 0.25 * t]
                for t in np.linspace(1.5, anatomy.half_width_cm - 1.0, 12)
            ]
        )
        _add_tube(bone, proj, clavicle, 0.7, shell_cm=0.2, core_fraction=TRABECULAR_FRACTION)
        # Scapula: a thin blade behind the upper ribs with a thick lateral border, and the humeral head beside it.
        wall = anatomy.half_width_cm - anatomy.fat_cm
        _add_bone(bone, proj, (s * (wall - 3.5), anatomy.shoulder_y_cm + 7.0, -depth + 2.0), (4.0, 7.0, 0.3), 0.1)
        border = np.array(
            [
                [s * (wall - 0.5), anatomy.shoulder_y_cm + 1.5, -depth + 3.0],
                [s * (wall - 4.5), anatomy.shoulder_y_cm + 13.0, -depth + 2.0],
            ]
        )
        _add_tube(bone, proj, border, 0.5, shell_cm=CORTEX_CM, core_fraction=TRABECULAR_FRACTION)
        _add_bone(bone, proj, (s * (anatomy.half_width_cm + 1.0), anatomy.shoulder_y_cm + 3.0, -1.0), (2.4, 2.4, 2.4))
        if arms_down:
            # Humeral shaft: a cortical tube round the marrow (outer radius about 1.1 cm, cortex about 0.4 cm). Its
            # chord is also counted in the arm's soft tissue: at most its 2.2 cm width of tissue too many behind it.
            _add_tube(bone, proj, _upper_arm(anatomy, s), 1.1, shell_cm=0.4, core_fraction=0.0)
    # Sternum (seen mainly on laterals).
    _add_bone(bone, proj, (0.0, anatomy.lung_top_y_cm + 8.0, depth - anatomy.fat_cm - 1.0), (1.6, 8.0, 0.7))
    return bone
