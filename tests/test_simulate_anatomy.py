"""The stand-in's anatomy and detector laws: Murray's branching, power-law texture, MTFs, collimation to the body."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.detector import Detector, blur
from simulate.phantom import (
    END_PLATE_CONCAVITY_CM,
    Findings,
    Grid,
    _add_cylinder,
    _add_ellipsoid,
    _add_segments,
    _add_tube,
    _mid_plane_to_detector_cm,
    _pedicle_section,
    _Projection,
    _rib,
    _torso,
    _turned,
    body_across_detector,
    project,
    random_anatomy,
)
from simulate.render import collimation_mask
from simulate.texture import FIELD_SPACING_CM, power_law_field
from simulate.vessels import grow_tree, murray_angles


def test_symmetric_bifurcation_follows_murray():
    r0 = 1.0
    r1 = r0 * 0.5 ** (1 / 3)
    a1, a2 = murray_angles(r0, r1, r1)
    assert a1 == pytest.approx(a2)
    assert np.degrees(a1) == pytest.approx(37.5, abs=0.1)  # the classic optimum for equal daughters
    thin = r0 * 0.2 ** (1 / 3)
    wide, narrow = murray_angles(r0, r0 * 0.8 ** (1 / 3), thin)
    assert narrow > wide, "the thinner daughter leaves at the wider angle"


def test_tree_keeps_the_cube_law_and_stays_inside():
    def inside(point):
        return float(np.sum(point**2)) < 100.0  # a sphere of radius 10 cm

    segments = grow_tree(np.zeros(3), np.array([1.0, 0.0, 0.0]), 0.5, inside, np.random.default_rng(0))
    assert len(segments) > 20
    assert all(inside(end) for _, end, _ in segments)
    by_start: dict[tuple, list[float]] = {}
    for start, _, radius in segments:
        by_start.setdefault(tuple(np.round(start, 9)), []).append(radius)
    parents = {tuple(np.round(end, 9)): radius for _, end, radius in segments}
    checked = 0
    for point, daughters in by_start.items():
        if point in parents and len(daughters) == 2:
            assert sum(r**3 for r in daughters) == pytest.approx(parents[point] ** 3)
            checked += 1
    assert checked > 5


def test_texture_has_the_requested_power_law():
    field = power_law_field(3, 3.0)
    assert field.std() == pytest.approx(1.0, rel=1e-3)
    spectrum = np.abs(np.fft.fft2(field)) ** 2
    f = np.fft.fftfreq(field.shape[0], d=FIELD_SPACING_CM)
    radius = np.hypot(f[:, None], f[None, :])
    band = (radius > 0.2) & (radius < 2.0)  # well above the flat low end, below the grid's Nyquist of 5 cycles/cm
    slope = np.polyfit(np.log(radius[band]), np.log(spectrum[band]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.1)


def test_scintillator_mtf_is_a_lorentzian_and_blur_applies_it():
    csi = Detector("SCINTILLATOR", "CsI", 0.6, 0.125, 0.0, spread="exponential")
    assert csi.mtf(np.array([0.0]))[0] == pytest.approx(1.0)
    assert 0.55 < csi.mtf(np.array([1.0]))[0] < 0.7  # CsI panels measure about 0.6 at 1 cycle/mm
    pitch = 0.1
    line = np.zeros((64, 256), dtype=np.float32)
    line[:, 128] = 1.0
    spread = blur(line, csi, pitch)[32]
    measured = np.abs(np.fft.rfft(spread))
    frequencies = np.fft.rfftfreq(256, d=pitch)
    at_one = np.argmin(np.abs(frequencies - 1.0))
    assert measured[at_one] / measured[0] == pytest.approx(csi.mtf(frequencies[at_one]), abs=0.02)
    with pytest.raises(ValueError, match="spread"):
        Detector("SCINTILLATOR", "CsI", 0.6, 0.125, 0.0, spread="lorentz")


def test_collimation_follows_a_narrow_body():
    rng = np.random.default_rng(0)
    mask = collimation_mask(400, 400, 1.0, rng, max_margin_cm=0.0, body_cm=(0.0, 10.0))
    columns = np.flatnonzero(mask.any(axis=0))
    width_cm = (columns[-1] - columns[0] + 1) * 0.1
    assert 21.0 <= width_cm <= 24.0  # the body's 20 cm plus 0.5-2 cm each side
    assert mask.any(axis=1).all(), "top and bottom keep the detector's margins"


def test_findings_turn_lung_into_as_much_soft_tissue_as_they_take():
    """A finding fills lung with tissue: each pixel's soft-tissue path grows by what its lung path loses, once."""
    anatomy = random_anatomy(np.random.default_rng(5), "M")
    grid = Grid(120, 100, 0.4)
    healthy = project(anatomy, Findings(), grid, view="PA", source_to_image_cm=180)
    for finding in ("lung_lesion", "consolidation", "pleural_other", "pleural_effusion"):
        sick = project(
            anatomy, Findings(frozenset({finding}), side=1, severity=0.8), grid, view="PA", source_to_image_cm=180
        )
        lost = healthy.lung - sick.lung
        assert lost.max() > 0.5, finding
        np.testing.assert_allclose(sick.soft_tissue - healthy.soft_tissue, lost, atol=1e-4, err_msg=finding)


def test_a_pneumothorax_leaves_air_where_the_lung_was():
    anatomy = random_anatomy(np.random.default_rng(5), "M")
    grid = Grid(120, 100, 0.4)
    healthy = project(anatomy, Findings(), grid, view="PA", source_to_image_cm=180)
    sick = project(
        anatomy, Findings(frozenset({"pneumothorax"}), side=1, severity=0.8), grid, view="PA", source_to_image_cm=180
    )
    collapsed = (healthy.lung - sick.lung) > 1.0
    assert collapsed.sum() > 50
    # No soft tissue takes the lung's place: the pleural space is air, so the side is darker, not denser (the lung's
    # texture scales its air path, so single pixels may differ a little either way).
    gained = sick.soft_tissue[collapsed] - healthy.soft_tissue[collapsed]
    lost = (healthy.lung - sick.lung)[collapsed]
    assert gained.mean() < 0.1 * lost.mean()


def test_bedside_ap_views_have_the_arms_beside_the_chest_and_pa_views_do_not():
    anatomy = random_anatomy(np.random.default_rng(3), "F")
    grid = Grid(150, 400, 0.2)  # 80 cm across: wider than any detector, to see where the arms lie
    column = round(200 + (anatomy.half_width_cm + 1.0 + 0.3 * anatomy.half_width_cm) * 1.15 / 0.2)
    rows = slice(95, 125)  # the upper arm, below the shoulder
    ap = project(anatomy, Findings(), grid, view="AP", source_to_image_cm=100)
    pa = project(anatomy, Findings(), grid, view="PA", source_to_image_cm=180)
    assert ap.soft_tissue[rows, column].min() > 5.0 and ap.bone[rows, column].max() > 0  # arm and humerus
    assert pa.soft_tissue[rows, column].max() == 0.0


def test_a_vertebral_body_projects_as_a_rectangle_with_dished_end_plates():
    """A flat-ended cylinder (not an ellipsoid): the same chord at every height between its end plates, which ramp
    over the dish's depth, and an elliptic chord across."""
    grid = Grid(200, 200, 0.02)
    y, x = grid.axes()
    far = _Projection(False, 1e9, 0.0, 1, grid, y, x)  # no magnification
    path = np.zeros((200, 200))
    _add_cylinder(path, far, (0.0, 0.0, 0.0), (1.5, 1.0, 0.5))
    along = path[:, 100]
    inside = np.abs(y[:, 0]) < 1.0 - END_PLATE_CONCAVITY_CM
    np.testing.assert_allclose(along[inside], 1.0, atol=1e-3)  # the body's full depth, 2 x 0.5 cm, at every height
    ramp = np.count_nonzero((along > 0.05) & (along < 0.95)) / 2 * grid.spacing_cm
    assert 0.6 * END_PLATE_CONCAVITY_CM <= ramp <= 1.1 * END_PLATE_CONCAVITY_CM
    across = path[100]
    np.testing.assert_allclose(across, np.sqrt(np.clip(1 - (x[0] / 1.5) ** 2, 0, None)), atol=1e-6)


def test_no_two_ribs_are_alike_and_a_patient_keeps_the_same_ribs():
    anatomy = random_anatomy(np.random.default_rng(5), "M")

    def drop(side: int, index: int) -> float:
        centre_line = _rib(anatomy, side, index)[0]
        return centre_line[-1, 1] - centre_line[0, 1]

    # From the seventh rib on the pattern is the same; each rib's own shape differs from it by a few per cent.
    drops = np.array([drop(side, index) for side in (-1, 1) for index in range(6, 11)])
    assert len(np.unique(drops.round(3))) == drops.size
    assert np.all(np.abs(drops / drops.mean() - 1) < 0.3)
    again = random_anatomy(np.random.default_rng(5), "M")  # the same patient drawn anew
    assert np.array_equal(_rib(again, 1, 8)[0], _rib(anatomy, 1, 8)[0])


def test_a_tube_is_the_same_in_one_piece_or_many_and_crossing_tubes_add():
    """A bone drawn as a polyline has no cortex inside it at its joints, and two bones that cross add their paths."""
    grid = Grid(120, 120, 0.02)
    y, x = grid.axes()
    far = _Projection(False, 1e9, 0.0, 1, grid, y, x)
    line = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pieces = np.stack([np.linspace(-1.0, 1.0, 9), np.zeros(9), np.zeros(9)], axis=1)
    whole, joined = np.zeros((120, 120)), np.zeros((120, 120))
    bone = {"shell_cm": 0.05, "core_fraction": 0.2}
    _add_tube(whole, far, line, 0.3, **bone)
    _add_tube(joined, far, pieces, 0.3, **bone)
    inside = np.abs(x[0]) < 0.9  # away from the rounded ends
    np.testing.assert_allclose(joined[:, inside], whole[:, inside], atol=1e-9)
    crossing = np.zeros((120, 120))
    _add_tube(crossing, far, line, 0.3, **bone)
    _add_tube(crossing, far, line[:, [1, 0, 2]], 0.3, **bone)  # the same tube turned upright
    centre = np.unravel_index(np.argmin(np.hypot(y, x)), (120, 120))
    assert crossing[centre] == pytest.approx(2 * whole[centre])


def test_segments_drawn_together_equal_each_drawn_alone():
    """Segments are drawn in batches of padded windows: apart from each other, they come out exactly as one at a time,
    whatever their windows' shapes, with a zero-length segment, one over the edge and one too thin to draw."""
    grid = Grid(150, 130, 0.05)
    y, x = grid.axes()
    far = _Projection(False, 1e9, 0.0, 1, grid, y, x)
    rng = np.random.default_rng(3)
    centres = [(u, v) for u in np.linspace(-2.6, 2.6, 6) for v in np.linspace(-3.1, 3.1, 7)]
    starts = np.array([[u, v, 0.0] for u, v in centres])
    turns = rng.uniform(0, 2 * np.pi, len(centres))
    lengths = rng.choice([0.0, 0.05, 0.2, 0.35], len(centres))
    ends = starts + np.stack([lengths * np.cos(turns), lengths * np.sin(turns), np.zeros(len(centres))], axis=1)
    widths = rng.uniform(0.02, 0.12, len(centres))
    widths[5] = 0.001  # under a quarter of a pixel: left out
    starts[-1, :2] = ends[-1, :2] = (3.3, 3.8)  # half over the corner
    shells = np.where(rng.random(len(centres)) < 0.5, 0.02, 0.0)
    together = np.zeros((150, 130))
    _add_segments(together, far, starts, ends, widths, 1.5, shell_cm=shells, core_fraction=0.3)
    alone = np.zeros((150, 130))
    for k in range(len(centres)):
        one = slice(k, k + 1)
        _add_segments(alone, far, starts[one], ends[one], widths[one], 1.5, shell_cm=shells[one], core_fraction=0.3)
    assert together.any() and np.array_equal(together, alone)


@pytest.mark.parametrize(("view", "source_to_image_cm"), [("PA", 180), ("AP", 100)])
def test_the_lungs_stay_inside_the_chest_wall(view, source_to_image_cm):
    """The torso is magnified like the lungs and ribs it holds, so there is chest wall round every lung pixel, even at
    a bedside unit's short distance."""
    anatomy = random_anatomy(np.random.default_rng(5), "F")
    maps = project(anatomy, Findings(), Grid(240, 240, 0.2), view=view, source_to_image_cm=source_to_image_cm)
    lung = maps.lung > 0.01
    assert lung.sum() > 2000
    assert ((maps.soft_tissue + maps.adipose)[lung] > 1.0).all()


def test_the_torso_is_magnified_and_widens_from_the_apex_down():
    anatomy = random_anatomy(np.random.default_rng(5), "F")
    grid = Grid(240, 240, 0.2)
    y, x = grid.axes()
    proj = _Projection(False, 180.0, _mid_plane_to_detector_cm(anatomy, lateral=False), 1, grid, y, x)
    torso = _torso(proj, anatomy, 0.0)

    def width(y_cm: float) -> int:
        row = int(np.argmin(np.abs(y[:, 0] - y_cm * proj.magnification(0.0))))
        return int(np.count_nonzero(torso[row]))

    widest = width(anatomy.dome_right_y_cm - 3.0)
    assert width(anatomy.lung_top_y_cm + 2.0) < 0.95 * widest
    # Magnified as its mid-plane is: as wide as the layout takes the body to be.
    assert widest * grid.spacing_cm / 2 == pytest.approx(body_across_detector(anatomy, "PA", 180.0)[1], abs=0.2)


def test_a_posterior_rib_arches_and_falls_most_steeply_at_the_wall():
    anatomy = random_anatomy(np.random.default_rng(5), "M")
    points = _rib(anatomy, -1, 6)[0]
    azimuth = np.linspace(0.0, 0.85, len(points))  # in units of pi
    heights = points[:, 1]
    assert heights[azimuth < 0.2].min() < heights[0]  # it rises a little from the vertebra before it falls
    steepest = azimuth[np.argmax(np.diff(heights))]
    assert 0.35 <= steepest <= 0.6


@pytest.mark.parametrize("lateral", [False, True])
def test_a_turned_ellipsoid_keeps_its_volume_and_turns_the_right_way(lateral):
    """The chord through a turned ellipsoid: the identity draws the upright one, a sphere is the same however it is
    turned, every turn keeps the volume (the chords' integral), and a turn about z tips the long axis down to +x."""
    grid = Grid(300, 300, 0.1)
    y, x = grid.axes()
    far = _Projection(lateral, 1e9, 0.0, 1, grid, y, x)  # no magnification

    def drawn(axes, rotation=None):
        path = np.zeros((300, 300))
        _add_ellipsoid(path, far, (1.0, 2.0, 3.0), axes, rotation=rotation)
        return path

    axes = (6.0, 4.0, 3.0)
    np.testing.assert_allclose(drawn(axes, np.eye(3)), drawn(axes), atol=1e-12)
    sphere = (4.0, 4.0, 4.0)
    np.testing.assert_allclose(drawn(sphere, _turned(0.9, 1) @ _turned(0.4, 2)), drawn(sphere), atol=1e-12)
    for about in (0, 1, 2):
        volume = drawn(axes, _turned(0.6, about)).sum() * grid.spacing_cm**2
        assert volume == pytest.approx(4 / 3 * np.pi * np.prod(axes), rel=2e-3)
    np.testing.assert_allclose(_turned(0.6, 2)[:, 0], [np.cos(0.6), np.sin(0.6), 0.0], atol=1e-12)
    if not lateral:
        tipped = drawn(axes, _turned(0.6, 2))
        rows, cols = np.nonzero(tipped > 0)
        assert np.corrcoef(rows, cols)[0, 1] > 0.3, "the long axis runs down towards +x"


def test_the_heart_tilts_apex_down_and_the_pedicles_have_the_cited_sizes():
    anatomy = random_anatomy(np.random.default_rng(5), "M")
    assert np.radians(25) <= anatomy.heart_tilt <= np.radians(45)
    t1, t4, t12 = (np.array(_pedicle_section(level)) * 20 for level in (0, 3, 11))  # full width and height, mm
    assert t4[0] == pytest.approx(4.5) and t4[0] < t1[0] and t4[0] < t12[0]
    assert t1[1] == pytest.approx(9.8) and t12[1] == pytest.approx(17.3)
