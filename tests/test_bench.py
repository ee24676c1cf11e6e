"""The powered benchmark on a tiny paired bench set: disjoint phantoms, paired arms, every experiment's rows."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest

from harmonize.bench import (
    BenchConfig,
    confounded_images,
    fit_images,
    read_manifest,
    run_bench,
    scanner_balanced_accuracy,
    scanner_images,
    set_identity,
)
from harmonize.bench_figure import write_bench_figure
from harmonize.controls import control_features
from simulate.bench import ARMS_BY_SPLIT, SET_STAMP, TRUTH_ARMS, bench_phantoms, render_bench
from xrh.batches import in_this_process
from xrh.errors import UsageError

# The arms of a test phantom (100020 is one): every arm but the bone truth.
TEST_ARMS = ARMS_BY_SPLIT["test"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    render_bench(out, bench_phantoms(30, seed=3), 48, seed=3, workers=1)
    return out


def test_splits_are_disjoint_and_test_phantoms_are_on_every_arm(bench_dir):
    images = read_manifest(bench_dir)
    phantoms = {split: {i.phantom_id for i in images if i.split == split} for split in ("train", "validate", "test")}
    assert not phantoms["train"] & phantoms["test"] and not phantoms["validate"] & phantoms["test"]
    assert not phantoms["train"] & phantoms["validate"]
    for phantom in phantoms["test"]:
        assert {i.arm for i in images if i.phantom_id == phantom} == set(TEST_ARMS)
    # The harmonization fit set (reference arm, training phantoms) never meets a test image.
    fit_set = {i.phantom_id for i in images if i.split == "train" and i.arm == "D110"}
    assert not fit_set & phantoms["test"]


def test_arms_share_the_grid_and_the_reference_repeat_differs_only_in_noise(bench_dir):
    import pydicom

    shapes = {arm: pydicom.dcmread(bench_dir / arm / "100020.dcm").pixel_array.shape for arm in TEST_ARMS}
    assert len(set(shapes.values())) == 1, shapes
    first = pydicom.dcmread(bench_dir / "D110" / "100020.dcm").pixel_array.astype(float)
    again = pydicom.dcmread(bench_dir / "D110R" / "100020.dcm").pixel_array.astype(float)
    assert not np.array_equal(first, again)
    assert np.corrcoef(first.ravel(), again.ravel())[0, 1] > 0.9


def test_the_bone_truth_is_d110_without_noise_and_without_bone_on_training_phantoms_only(bench_dir):
    import pydicom

    truth = read_manifest(bench_dir, truth=True)
    assert {i.arm for i in truth} == set(TRUTH_ARMS) == {"D110clean", "D110boneless"}
    assert {i.split for i in truth} == {"train", "validate"}  # nothing of a test phantom trains the bone model
    assert not {i.arm for i in read_manifest(bench_dir)} & set(TRUTH_ARMS)  # no experiment reads them as a scanner
    phantom = next(i.phantom_id for i in truth)
    noisy, clean, boneless = (
        pydicom.dcmread(bench_dir / arm / f"{phantom}.dcm") for arm in ("D110", "D110clean", "D110boneless")
    )
    assert noisy.get("Exposure") == clean.get("Exposure") == boneless.get("Exposure")  # D110's draw of the mAs
    first, second, third = (d.pixel_array.astype(float) for d in (noisy, clean, boneless))
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] > 0.95
    assert not np.array_equal(second, third) and np.corrcoef(second.ravel(), third.ravel())[0, 1] > 0.8


def test_the_texture_arm_has_s120s_detector_behind_d110s_processing(bench_dir):
    import pydicom

    reference, texture, scanner = (pydicom.dcmread(bench_dir / arm / "100020.dcm") for arm in ("D110", "S120T", "S120"))
    assert texture.Manufacturer == reference.Manufacturer != scanner.Manufacturer
    assert texture.PhotometricInterpretation == reference.PhotometricInterpretation
    assert texture.DetectorType == scanner.DetectorType == "SCINTILLATOR" != reference.DetectorType
    assert float(texture.KVP) == float(scanner.KVP) == 120


def test_a_geometry_reference_is_d110_at_the_other_arms_distance(bench_dir):
    import pydicom

    reference = pydicom.dcmread(bench_dir / "D110" / "100020.dcm")
    for arm, unit in (("D110atD90PA", "D90PA"), ("D110atHP", None)):
        moved = pydicom.dcmread(bench_dir / arm / "100020.dcm")
        for keyword in ("ManufacturerModelName", "DetectorType", "KVP", "ExposureInmAs"):
            assert moved.get(keyword) == reference.get(keyword), (arm, keyword)
        assert moved.DistanceSourceToDetector < reference.DistanceSourceToDetector
        if unit is not None:  # HP's own header does not say its distance
            other = pydicom.dcmread(bench_dir / unit / "100020.dcm")
            assert moved.DistanceSourceToDetector == other.DistanceSourceToDetector
        assert moved.EstimatedRadiographicMagnificationFactor > reference.EstimatedRadiographicMagnificationFactor
        first, second = (pydicom.dcmread(bench_dir / a / "100020.dcm").pixel_array.astype(float) for a in ("D110", arm))
        assert not np.array_equal(first, second) and np.corrcoef(first.ravel(), second.ravel())[0, 1] > 0.8


def test_rendering_again_renders_nothing_and_gives_the_same_bytes(bench_dir, tmp_path):
    phantom = next(p for p in bench_phantoms(30, seed=3) if p.phantom_id == 100020)
    render_bench(tmp_path, [phantom], 48, seed=3, workers=1)  # a fresh folder: rendered anew
    for arm in TEST_ARMS:
        assert (tmp_path / arm / "100020.dcm").read_bytes() == (bench_dir / arm / "100020.dcm").read_bytes(), arm
    written = {arm: (tmp_path / arm / "100020.dcm").stat().st_mtime_ns for arm in TEST_ARMS}
    render_bench(tmp_path, [phantom], 48, seed=3, workers=1)  # the same folder again: nothing to render
    assert {arm: (tmp_path / arm / "100020.dcm").stat().st_mtime_ns for arm in TEST_ARMS} == written


def test_a_set_is_extended_only_with_images_rendered_the_same_way(bench_dir, tmp_path):
    phantom = next(p for p in bench_phantoms(30, seed=3) if p.phantom_id == 100020)
    for arm in TEST_ARMS:
        (tmp_path / arm).mkdir()
        (tmp_path / arm / "100020.dcm").write_bytes((bench_dir / arm / "100020.dcm").read_bytes())
    with pytest.raises(UsageError, match=f"without {SET_STAMP}.*new folder"):
        render_bench(tmp_path, [phantom], 48, seed=3, workers=1)  # images of an earlier stand-in: no stamp
    (tmp_path / SET_STAMP).write_bytes((bench_dir / SET_STAMP).read_bytes())
    with pytest.raises(UsageError, match="image_size 48 \\(now 64\\)"):
        render_bench(tmp_path, [phantom], 64, seed=3, workers=1)
    with pytest.raises(UsageError, match="seed 3 \\(now 4\\)"):
        render_bench(tmp_path, [phantom], 48, seed=4, workers=1)
    render_bench(tmp_path, [phantom], 48, seed=3, workers=1)  # made the same way: accepted, nothing to render


def test_acquisition_aware_fits_see_each_phantom_on_one_arm_only(bench_dir):
    images = read_manifest(bench_dir)
    references, others = fit_images(images, "physics")
    chosen = {path: image for image in images for path in [image.path] if path in {*references, *others}}
    phantoms = [image.phantom_id for image in chosen.values()]
    assert len(phantoms) == len(set(phantoms)) == len({i.phantom_id for i in images if i.split == "train"})
    assert {chosen[path].arm for path in references} == {"D110"}
    assert {chosen[path].arm for path in others} == {"S120", "D90PA", "S120T", "HP"}
    assert all(image.split == "train" for image in chosen.values())
    assert fit_images(images, "cdf") == ([i.path for i in images if i.split == "train" and i.arm == "D110"], [])


def test_confounded_training_set_follows_the_prevalence_rule(bench_dir):
    images = read_manifest(bench_dir)
    chosen = confounded_images(images, "train", share=1.0, seed=0)
    assert all((i.arm == "D90PA") == bool(i.abnormal) for i in chosen)
    assert len({i.phantom_id for i in chosen}) == len(chosen)
    # The geometry twin draws the same phantoms onto D110 at D90PA's distance.
    twin = confounded_images(images, "train", share=0.7, seed=0, shifted="D110atD90PA")
    first = confounded_images(images, "train", share=0.7, seed=0)
    assert [(i.phantom_id, i.arm == "D110") for i in twin] == [(i.phantom_id, i.arm == "D110") for i in first]
    assert {i.arm for i in twin} == {"D110", "D110atD90PA"}


def test_scanner_pairs_and_balanced_accuracy():
    scores = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.7]])
    assert scanner_balanced_accuracy(scores) == pytest.approx(0.5 * (1.0 + 2 / 3))
    image = np.zeros((48, 48), dtype=np.float32)
    image[:, 6:40] = np.linspace(0.1, 1.0, 34)
    outline, scalars = control_features(image)
    assert outline.shape == (256,) and scalars[1] == 6 and scalars[2] == 8  # left and right padding widths


def test_bench_writes_every_experiment_with_intervals(bench_dir, tmp_path, monkeypatch):
    from harmonize import scanners

    monkeypatch.setattr(scanners, "MIN_SCANNER_IMAGES", 2)  # a few training phantoms per arm in the small set
    conn = sqlite3.connect(tmp_path / "w.sqlite")
    config = BenchConfig(
        methods=("none", "cdf", "physics", "physics_energy"), seeds=(0,), size=32, epochs=1, warmup_epochs=0, patience=1
    )
    rows = run_bench(conn, bench_dir, tmp_path / "cache", config, "bench-test", map_batches=in_this_process)
    experiments = {row["experiment"] for row in rows}
    scanner = {"scanner", "scanner_controls", "texture", "texture_controls"}
    assert experiments >= scanner | {
        "fidelity",
        "shift",
        "null",
        "confounded",
        "confounded_geometry",
        "ranking",
        "fallback",
    }
    stored = conn.execute("select count(*), group_concat(distinct method) from harm_bench").fetchone()
    assert stored[0] == len(rows) and set(stored[1].split(",")) == {
        "none",
        "cdf",
        "physics",
        "physics_energy",
        "combat",
    }
    # The bone model is trained on the training phantoms' truth and judged on the validation phantoms'.
    (bone,) = [row for row in rows if row["experiment"] == "bone_model"]
    assert bone["method"] == "physics_energy" and bone["ci_low"] <= bone["value"] <= bone["ci_high"]
    assert "validation phantoms" in bone["note"]
    # What the energy stage did to each arm's scanner: the reference's own bone contrast is left as it is.
    gains = {row["metric"]: row["value"] for row in rows if row["experiment"] == "energy"}
    assert gains["energy_gain_D110"] == gains["energy_gain_D110R"] == 1.0 and "energy_gain_S120T" in gains
    fallbacks = {row["metric"]: row for row in rows if row["experiment"] == "fallback" and row["method"] == "physics"}
    assert set(fallbacks) == {f"fallback_images_{arm}" for arm in TEST_ARMS}
    # Every arm's scanner is fitted; HP's headers have no distances, so its geometry is left as it was, and it says so.
    silent = fallbacks.pop("fallback_images_HP")
    assert silent["value"] == count_test_phantoms(bench_dir) and "geometry stage was not fitted" in silent["note"]
    assert all(row["value"] == 0 for row in fallbacks.values())
    fidelity = {row["metric"] for row in rows if row["experiment"] == "fidelity" and row["method"] == "physics"}
    # The ceilings beside the other arms: noise only, and the distance only.
    assert {"ssim_D110R_vs_D110", "ssim_D110atD90PA_vs_D110", "ssim_D110atHP_vs_D110"} <= fidelity
    shift = {row["metric"] for row in rows if row["experiment"] == "shift" and row["method"] == "physics"}
    assert shift == {"auc_D110", "auc_D90PA", "auc_D110atD90PA", "auc_gap", "auc_gap_D110atD90PA"}
    figure = write_bench_figure(rows, tmp_path / "bench.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in rows:
        if row["ci_low"] is not None:
            assert row["ci_low"] <= row["ci_high"]
    judged_on_test_phantoms = [row for row in rows if row["experiment"] != "bone_model"]
    assert {row["test_phantoms"] for row in judged_on_test_phantoms} == {count_test_phantoms(bench_dir)}
    set_cache = tmp_path / "cache" / "bench_sets" / set_identity(read_manifest(bench_dir))
    assert (set_cache / "images").is_dir()  # analysis images are cached per set


def test_a_set_rendered_again_is_not_read_from_the_old_sets_cache(bench_dir, tmp_path):
    """The cache is keyed by phantom and arm, so a set re-rendered into its folder (a new stand-in version) must get a
    new identity; copying keeps the files' times, and a missing file is a one-line error."""
    copy = tmp_path / "set"
    shutil.copytree(bench_dir, copy)
    images = read_manifest(copy)
    before = set_identity(images)
    assert set_identity(read_manifest(copy)) == before
    assert set_identity(read_manifest(bench_dir)) == before  # a copy that keeps the times shares the cache
    rendered_again = images[0].path
    stat = rendered_again.stat()
    rendered_again.write_bytes(rendered_again.read_bytes())
    os.utime(rendered_again, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert set_identity(read_manifest(copy)) != before
    rendered_again.unlink()
    with pytest.raises(ValueError, match=f"{rendered_again.name}: listed in the bench manifest but missing"):
        set_identity(read_manifest(copy))


def count_test_phantoms(bench_dir) -> int:
    return len({i.phantom_id for i in scanner_images(read_manifest(bench_dir), "test")})


def test_ranking_needs_controls_at_chance_no_null_gap_and_a_paired_gain():
    from pathlib import Path

    from harmonize.bench import _MethodScores, _ranking, _Seed

    rng = np.random.default_rng(0)
    n = 400
    abnormal = (np.arange(n) % 2).astype(int)
    diagnostic = np.clip(abnormal[:, None] * 0.6 + rng.uniform(0, 0.4, (n, 2)), 0, 1)  # both arms, AUC about 1
    found = np.column_stack([rng.uniform(0, 0.3, n), rng.uniform(0.7, 1, n)])  # the scanner read perfectly
    hidden = rng.uniform(0, 1, (n, 2))  # the scanner at chance

    def scores(scanner, controls):
        return _MethodScores({"scanner": (scanner, controls)}, diagnostic, diagnostic)

    context = _Seed([], BenchConfig(), 0, None, Path("."), {}, None, {}, [], abnormal, {})
    rows = _ranking(
        {
            "none": scores(found, {"outline_only": 0.5}),
            "good": scores(hidden, {"outline_only": 0.5}),
            "cue": scores(hidden, {"outline_only": 0.9}),  # hides the scanner but leaves a trivial cue
            "same": scores(found, {"outline_only": 0.5}),
        },
        context,
    )
    ranks = {row["method"]: row["value"] for row in rows if row["metric"] == "scanner_rank"}
    assert ranks == {"good": 1}
    differences = {row["method"]: row for row in rows if row["metric"] == "scanner_distance_difference"}
    assert differences["good"]["ci_high"] < 0 and differences["same"]["value"] == 0


def test_a_bone_model_trained_on_a_bench_set_is_what_a_cohort_fit_of_energy_matching_reads(
    bench_dir, built, tmp_path, monkeypatch
):
    from harmonize import scanners
    from harmonize.common import bone_model_of, params_from_json
    from harmonize.jobs import apply_method, fit_method, train_bone_model
    from models_ml.splits import split_cohort
    from xrh.settings import Settings
    from xrh.warehouse import connect

    monkeypatch.setattr(scanners, "MIN_SCANNER_IMAGES", 3)  # the test release has a handful of images per scanner
    settings = Settings(data_root=built.data_root, warehouse=tmp_path / "warehouse.sqlite", cache_dir=tmp_path / "c")
    with sqlite3.connect(built.warehouse) as source, sqlite3.connect(settings.warehouse) as copy:
        source.backup(copy)
    cohort = "scanner_d110_vs_s120"
    with connect(settings.warehouse) as conn:
        split_cohort(conn, cohort, run_id="split")
    with pytest.raises(ValueError, match="has none: render a bench set .* `xrh harmonize bone-model --bench DIR`"):
        fit_method(settings, "physics_energy", cohort, "D110")
    bone_run = train_bone_model(settings, bench_dir)
    fit_run, _ = fit_method(settings, "physics_energy", cohort, "D110")
    apply_run, count = apply_method(settings, "physics_energy", cohort, "D110")
    with connect(settings.warehouse) as conn:
        trained, stored = conn.execute(
            "select training_phantoms, parameters from harm_bone_models where run_id = ?", (bone_run,)
        ).fetchone()
        fitted = params_from_json(
            conn.execute("select parameters from harm_params where run_id = ?", (fit_run,)).fetchone()[0]
        )
        named = conn.execute(
            "select json_extract(parameters, '$.bone_model') from runs where run_id = ?", (fit_run,)
        ).fetchone()[0]
        indexed = conn.execute("select count(*) from harm_images where run_id = ?", (apply_run,)).fetchone()[0]
    train_phantoms = {i.phantom_id for i in read_manifest(bench_dir) if i.split == "train"}
    assert trained == len(train_phantoms) and named == bone_run and indexed == count > 0
    # The fit carries the stored bone model, array for array: its parameters alone are enough to apply it.
    model = params_from_json(stored)
    assert bone_model_of(fitted).keys() == model.keys()
    assert all(np.array_equal(fitted[key], model[key]) for key in model)
