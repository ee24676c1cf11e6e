"""Fit on a reference group's training images, apply to the cohort: harm_params, 16-bit PNGs and harm_images."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pydicom
import pytest

from harmonize.common import params_from_json
from harmonize.fitting import apply, fit, read_png16
from harmonize.methods import image_method
from ingest.images import load_values
from models_ml.splits import split_cohort
from xrh.files import sha256_file
from xrh.warehouse import connect


@pytest.mark.parametrize("method", ["cdf", "bands"])
def test_fit_then_apply_writes_parameters_images_and_index(built, method):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        fitted = fit(conn, built.mimic_cxr, method, "scanner_d110_vs_s120", "D110", f"fit-{method}", split_seed=0)
        count = apply(conn, built.mimic_cxr, built.cache_dir, f"fit-{method}", f"apply-{method}", split_seed=0)
        reference_images = conn.execute(
            "select reference_images from harm_params where run_id = ?", (f"fit-{method}",)
        ).fetchone()[0]
        rows = conn.execute(
            "select dicom_id, path, sha256, bytes from harm_images where run_id = ?", (f"apply-{method}",)
        ).fetchall()
        parameters = conn.execute("select parameters from harm_params where run_id = ?", (f"fit-{method}",)).fetchone()
        source = conn.execute(
            "select c.dicom_path from cohort_images as c where c.dicom_id = ?", (rows[0][0],)
        ).fetchone()[0]
    assert fitted == reference_images > 0 and count == len(rows) > 0
    png = built.cache_dir / rows[0][1]
    assert (rows[0][2], rows[0][3]) == (sha256_file(png), png.stat().st_size)  # each image recorded with its digest
    harmonized = read_png16(png)
    original = load_values(built.mimic_cxr / source)
    assert harmonized.dtype == np.uint16 and harmonized.shape == original.shape
    expected = image_method(method).apply(original, params_from_json(parameters[0]))
    assert np.abs(harmonized.astype(float) - np.rint(expected)).max() <= 1


def test_the_acquisition_aware_chain_is_fitted_per_scanner_and_applied_by_header(built, monkeypatch):
    from harmonize import scanners
    from harmonize.acquisition import acquisition_of

    monkeypatch.setattr(scanners, "MIN_SCANNER_IMAGES", 3)  # the test release has a handful of images per scanner
    cohort = "scanner_d110_vs_s120"
    with connect(built.warehouse) as conn:
        split_cohort(conn, cohort, run_id="split")
        fitted = fit(conn, built.mimic_cxr, "physics", cohort, "D110", "fit-physics", split_seed=0)
        count = apply(conn, built.mimic_cxr, built.cache_dir, "fit-physics", "apply-physics", split_seed=0)
        parameters = params_from_json(
            conn.execute("select parameters from harm_params where run_id = 'fit-physics'").fetchone()[0]
        )
        rows = conn.execute(
            "select h.path, h.fallback, c.dicom_path, c.energy_group from harm_images as h"
            " join cohort_images as c using (dicom_id) where h.run_id = 'apply-physics' order by h.dicom_id"
        ).fetchall()
        training = dict(
            conn.execute(
                "select energy_group, count(*) from ml_dataset_splits join cohort_images using (dicom_id)"
                f" where cohort_name = '{cohort}' and seed = 0 and split = 'train' group by energy_group"
            ).fetchall()
        )
    # One row per scanner, fitted on its own training images; the reference scanner is the reference group's.
    assert fitted == training["D110"] and count == len(rows)
    assert sum(parameters["scanner_images"]) == sum(training.values())
    assert "stativ dr 4000" in parameters["reference_scanner"] and len(parameters["scanners"]) == 2
    assert all(fallback is None for _, fallback, _, _ in rows)
    for path, _, source, group in (rows[0], next(r for r in rows if r[3] != rows[0][3])):
        dataset = pydicom.dcmread(built.mimic_cxr / source)
        harmonized = read_png16(built.cache_dir / path).astype(float)
        expected = scanners.apply(load_values(built.mimic_cxr / source), acquisition_of(dataset), parameters)
        assert np.abs(harmonized - np.rint(np.clip(expected, 0, 65535))).max() <= 1
        if group == "D110":  # the reference scanner's own images come back as they were
            assert np.abs(harmonized - load_values(built.mimic_cxr / source)).max() <= 1


def test_fitting_reads_the_split_of_the_seed_it_is_given(built):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", seed=5, run_id="split-5")
        training = conn.execute(
            "select count(*) from ml_dataset_splits join cohort_images using (dicom_id) where cohort_name ="
            " 'scanner_d110_vs_s120' and scheme = 'standard' and seed = 5 and split = 'train' and energy_group = 'D110'"
        ).fetchone()[0]
        assert fit(conn, built.mimic_cxr, "minmax", "scanner_d110_vs_s120", "D110", "fit-5", split_seed=5) == training
        with pytest.raises(ValueError, match="seed 6"):
            fit(conn, built.mimic_cxr, "minmax", "scanner_d110_vs_s120", "D110", "fit-6", split_seed=6)


def test_unknown_method_and_missing_reference_are_clear_errors(built):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        with pytest.raises(ValueError, match="unknown harmonization method 'magic'"):
            fit(conn, built.mimic_cxr, "magic", "scanner_d110_vs_s120", "D110", "x", split_seed=0)
        with pytest.raises(ValueError, match="no training images of reference group 'D90'"):
            fit(conn, built.mimic_cxr, "cdf", "scanner_d110_vs_s120", "D90", "x", split_seed=0)
        with pytest.raises(ValueError, match="no fitted parameters for run 'nope'"):
            apply(conn, built.mimic_cxr, built.cache_dir, "nope", "y", split_seed=0)


def test_evaluation_writes_results_and_the_leaderboard_mart(built, capsys, monkeypatch):
    from harmonize import scanners
    from harmonize.cli import leaderboard_command
    from harmonize.config import field_preprocessing
    from harmonize.evaluate import evaluate
    from harmonize.fitting import cohort_images
    from ingest.images import ImageCache, Preprocessing
    from models_ml.config import TrainConfig
    from models_ml.train import train
    from xrh.dbt import run_dbt
    from xrh.runs import recorded_run

    config = TrainConfig(
        cohort="scanner_d110_vs_s120", architecture="small_cnn", image_size=32, epochs=2, batch_size=8, warmup_epochs=0
    )
    monkeypatch.setattr(scanners, "MIN_SCANNER_IMAGES", 3)  # a handful of images per scanner in the test release
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        split_cohort(conn, "abnormal_vs_healthy", run_id="split")
        with recorded_run(conn, "train", config.parameters()) as run:
            train(conn, built, config, run.run_id)
        # One S120 training image whose header gave no pixel spacing (RG1's 0\\0 reaches the mart as NULL): left out.
        unspaced = next(
            i
            for i in cohort_images(conn, built.mimic_cxr, "scanner_d110_vs_s120", seed=0)
            if i.split == "train" and i.energy_group == "S120"
        )
        spacing = conn.execute(
            "select pixel_spacing_mm from acquisition where dicom_id = ?", (unspaced.dicom_id,)
        ).fetchone()[0]
        conn.execute("update acquisition set pixel_spacing_mm = null where dicom_id = ?", (unspaced.dicom_id,))
        conn.commit()
        try:
            with recorded_run(conn, "harmonize_evaluate", {"test": True}) as run:
                rows = evaluate(
                    conn,
                    built,
                    cohort="scanner_d110_vs_s120",
                    reference="D110",
                    methods=["cdf", "physics", "combat"],
                    run_id=run.run_id,
                    epochs=2,
                    size=40,  # the classifiers it trains read 40 pixels; the frozen one's features its own 32
                    permutations=20,
                    diagnostic_cohort="abnormal_vs_healthy",
                    external_group="D90",
                )
        finally:
            restore = "update acquisition set pixel_spacing_mm = ? where dicom_id = ?"
            conn.execute(restore, (spacing, unspaced.dicom_id))
            conn.commit()
        images = cohort_images(conn, built.mimic_cxr, "scanner_d110_vs_s120", seed=0)
    metrics = {(row["method"], row["metric"]) for row in rows}
    # The acquisition-aware chain serves the scanners it was fitted on; the diagnostic experiment's D90 images are not
    # among them, and the rows say how many it left as they were.
    fell_back = {row["grouping"]: row["value"] for row in rows if row["metric"] == "fallback_images"}
    assert fell_back.get("D90", 0) > 0 and "D110" not in fell_back and "S120" not in fell_back
    for method in ("none", "cdf", "physics"):
        for metric in (
            "retrained_balanced_accuracy",
            "outline_only_balanced_accuracy",
            "scalar_cues_balanced_accuracy",
            "frame_outline_only_balanced_accuracy",
            "frame_scalar_cues_balanced_accuracy",
            "probe_balanced_accuracy",
            "probe_rbf_balanced_accuracy",
            "mmd_squared",
            "frechet_distance",
            "ssim",
            "psnr",
        ):
            assert (method, metric) in metrics, (method, metric)
        for metric in (
            "diagnostic_auc_internal",
            "diagnostic_auc_external",
            "diagnostic_auc_mean",
            "diagnostic_auc_gap",
        ):
            assert (method, metric) in metrics, (method, metric)
    assert {metric for method, metric in metrics if method == "combat"} == {
        "probe_balanced_accuracy",
        "probe_rbf_balanced_accuracy",
        "mmd_squared",
        "frechet_distance",
        "not_ranked",
    }
    # The retrained classifier reads the analysis field; every method is ranked or says why not, once.
    # It says what its test set can resolve: the interval at chance (1.96 x 0.5 / sqrt(n)) and the size +-0.025 needs.
    (retrained_on,) = {row["grouping"] for row in rows if row["metric"] == "retrained_balanced_accuracy"}
    tested = sum(i.split == "test" for i in images)
    half_width = 1.96 * 0.5 / tested**0.5
    expected = f"{tested} test images (95% interval about ±{half_width:.3f} at chance; ±0.025 needs 1,538)"
    left_out = "1 image without a pixel spacing left out"
    assert retrained_on == f"{expected}, centred 256 mm field at 40 px, equalized; {left_out}"
    assert [(row["method"], row["grouping"], row["value"]) for row in rows if row["metric"] == "left_out_images"] == [
        ("none", "S120: no pixel spacing, so no 256 mm field", 1)
    ]
    verdicts = [row for row in rows if row["metric"] in ("rank", "not_ranked")]
    assert Counter(row["method"] for row in verdicts) == {"none": 1, "cdf": 1, "physics": 1, "combat": 1}
    assert not any("frame_" in row["grouping"] for row in verdicts)  # whole frames inform; they do not guard
    for method in ("cdf", "physics"):
        assert {(method, "retrained_distance_difference"), (method, "diagnostic_auc_mean_difference")} <= metrics
    gaps = [row for row in rows if row["metric"] == "diagnostic_auc_gap"]
    assert all(row["ci_low"] <= row["value"] <= row["ci_high"] for row in gaps)
    ssim = {row["method"]: row["value"] for row in rows if row["metric"] == "ssim"}
    # The paired rendering shows the same anatomy on the reference scanner: similar, not identical; harmonizing
    # changes how similar (SSIM's range alone, [-1, 1], would hold for any pair of images).
    assert 0.2 < ssim["none"] < 1 and ssim["cdf"] != ssim["none"], ssim
    assert (built.cache_dir / "harmonized" / run.run_id / "panel.png").stat().st_size > 0
    read = {
        "frozen features": ImageCache(built.cache_dir, Preprocessing(size=32)),
        "pathology model": ImageCache(built.cache_dir, Preprocessing(size=40)),
        "retrained classifier": ImageCache(built.cache_dir, field_preprocessing(40)),
    }
    for reader, cache in read.items():
        assert all(i.dicom_id in cache for i in images if i.dicom_id != unspaced.dicom_id), reader
    assert run_dbt(built, ["build", "--select", "harmonization_leaderboard"])
    with connect(built.warehouse, readonly=True) as conn:
        board = dict(conn.execute("select method, ranking from harmonization_leaderboard").fetchall())
    assert set(board) == {"none", "cdf", "physics", "combat"}
    assert board["none"] == "the baseline every method is compared with" and "works on features" in board["combat"]
    capsys.readouterr()
    assert leaderboard_command(None, built) == 0
    printed = capsys.readouterr().out
    assert "Harmonization leaderboard" in printed and "SSIM" in printed and "PSNR (dB)" in printed
    assert "retrained classifier: " in printed and "centred 256 mm field" in printed
    (combat_line,) = [line for line in printed.splitlines() if "combat" in line]
    assert "works on features" in combat_line  # no retrained classifier: no rank, and the table says why


def test_label_matched_test_sets_hold_the_same_count_of_each_label():
    from pathlib import Path

    from harmonize.diagnostic import label_matched
    from harmonize.fitting import CohortImage

    def images(group, labels):
        return [CohortImage(f"{group}{k}", Path("x"), "test", group, k, label) for k, label in enumerate(labels)]

    first, second = images("a", [0] * 10 + [1] * 3), images("b", [0] * 4 + [1] * 8)
    chosen_first, chosen_second = label_matched(first, second, np.random.default_rng(0))
    for chosen in (chosen_first, chosen_second):
        assert sorted(i.label for i in chosen) == [0] * 4 + [1] * 3
    assert len({i.dicom_id for i in chosen_first}) == 7


def test_diagnostic_design_names_a_missing_group(built):
    from harmonize.diagnostic import diagnostic_design

    with connect(built.warehouse) as conn:
        split_cohort(conn, "abnormal_vs_healthy", run_id="split")
        with pytest.raises(ValueError, match="has no images of group 'S999'"):
            diagnostic_design(conn, built.mimic_cxr, "abnormal_vs_healthy", "D110", "S999", seed=0)


def test_diagnostic_test_sets_hold_no_image_a_harmonization_was_fitted_on(built):
    from harmonize.diagnostic import diagnostic_design
    from harmonize.fitting import cohort_images

    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        split_cohort(conn, "abnormal_vs_healthy", run_id="split")
        scanner = cohort_images(conn, built.mimic_cxr, "scanner_d110_vs_s120", seed=0)
        fitted_on = {i.dicom_id for i in scanner if i.split == "train"}
        design = diagnostic_design(conn, built.mimic_cxr, "abnormal_vs_healthy", "D110", "D90", 0, fitted_on=fitted_on)
    tested = {i.dicom_id for i in design.internal_test + design.external_test}
    assert tested and not tested & fitted_on


def test_images_without_a_pixel_spacing_are_found_in_the_acquisition_mart(built, tmp_path):
    """RG1's ``0\\0`` reaches the mart as NULL (test_data_quality); here one cohort image's row says so, in a copy."""
    import shutil

    from harmonize.fitting import cohort_images, without_pixel_spacing

    copy = tmp_path / "warehouse.sqlite"
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
    shutil.copy(built.warehouse, copy)
    with connect(copy) as conn:
        images = cohort_images(conn, built.mimic_cxr, "scanner_d110_vs_s120", seed=0)
        assert without_pixel_spacing(conn, images) == set()
        conn.execute("update acquisition set pixel_spacing_mm = null where dicom_id = ?", (images[0].dicom_id,))
        conn.commit()
        assert without_pixel_spacing(conn, images) == {images[0].dicom_id}
        assert without_pixel_spacing(conn, images[1:]) == set()  # only the images asked about


def _judged(predicted, controls=(0.5, 0.5), auc_mean=0.8):
    from harmonize.evaluate import _Judged

    names = ("outline_only_balanced_accuracy", "scalar_cues_balanced_accuracy")
    samples = auc_mean + np.linspace(-0.05, 0.05, 101)  # stands in for the paired bootstrap samples
    return _Judged(np.asarray(predicted), dict(zip(names, controls, strict=True)), auc_mean, samples)


def test_a_method_ranks_only_with_a_paired_gain_clean_controls_and_the_diagnosis_kept():
    from harmonize.evaluate import _ranking_rows

    labels = np.repeat([0, 1], 200)
    rng = np.random.default_rng(0)
    chance = rng.integers(0, 2, labels.size)
    judged = {
        "none": _judged(labels),  # the scanner read perfectly
        "good": _judged(chance),
        "erases": _judged(chance, auc_mean=0.7),  # the diagnostic model loses 0.1
        "cue": _judged(chance, controls=(0.5, 0.9)),  # a scalar cue reads the scanner
        "same": _judged(labels),  # no gain over none
    }
    rows = _ranking_rows(judged, labels, seed=0)
    verdicts = {r["method"]: (r["metric"], r["grouping"], r["value"]) for r in rows if "rank" in r["metric"]}
    assert verdicts["good"][0::2] == ("rank", 1)
    assert verdicts["none"][0] == verdicts["erases"][0] == verdicts["cue"][0] == verdicts["same"][0] == "not_ranked"
    assert "mean diagnostic AUC 0.100 below none's (at most 0.02; interval -0.100 to -0.100)" in verdicts["erases"][1]
    assert "scalar_cues_balanced_accuracy 0.900 above 0.6" in verdicts["cue"][1]
    assert "not separated from none" in verdicts["same"][1]
    difference = {row["method"]: row for row in rows if row["metric"] == "retrained_distance_difference"}
    assert difference["good"]["ci_high"] < 0 and difference["same"]["value"] == 0


def test_apply_finds_its_fit_after_the_code_version_changed(built, monkeypatch):
    """A fit and an apply of the same method, cohort, reference and seed, with only the code version changed in
    between (as any edit of a tracked file does): apply finds the fit by what it is, not by re-hashing."""
    import xrh.runs
    from harmonize.jobs import apply_method, fit_method

    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
    monkeypatch.setattr(xrh.runs, "code_version", lambda: "0.1.0+gfitted")
    fit_run, _ = fit_method(built, "minmax", "scanner_d110_vs_s120", "D110")
    monkeypatch.setattr(xrh.runs, "code_version", lambda: "0.1.0+gedited.dirty")
    _, count = apply_method(built, "minmax", "scanner_d110_vs_s120", "D110")
    with connect(built.warehouse, readonly=True) as conn:
        used = {row[0] for row in conn.execute("select distinct fit_run_id from harm_images where method = 'minmax'")}
    assert count > 0 and fit_run in used
    with pytest.raises(ValueError, match="run `xrh harmonize fit --method cdf --reference D90"):
        apply_method(built, "cdf", "scanner_d110_vs_s120", "D90")


@pytest.mark.parametrize("method", ["cdf", "fda", "physics"])
def test_the_image_path_gives_the_same_results_in_one_process_and_in_two(built, tmp_path, monkeypatch, method):
    from functools import partial

    import harmonize.fitting
    import harmonize.scanners
    import ingest.images
    from harmonize.common import params_to_json
    from harmonize.fitting import Harmonization, cohort_images, fit_parameters
    from ingest.images import ImageCache, Preprocessing, fill_cache
    from xrh.batches import in_this_process, local_processes

    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        images = cohort_images(conn, built.mimic_cxr, "scanner_d110_vs_s120", seed=0)
    if method == "physics":  # fitted per scanner: each group's own images (a handful in the test release)
        monkeypatch.setattr(harmonize.scanners, "MIN_SCANNER_IMAGES", 3)
        paths = [i.path for i in images if i.energy_group == "D110"][:24]
        others = [i.path for i in images if i.energy_group != "D110"][:24]
    else:
        images = images[:40]
        paths, others = [i.path for i in images], []
    for module in (harmonize.fitting, ingest.images):  # small batches: several of them, merged across workers
        monkeypatch.setattr(module, "batches_of", partial(module.batches_of, size=8))
    pairs = [(i.dicom_id, i.path) for i in images[:40]]
    serial = fit_parameters(method, paths, in_this_process, other_paths=others)
    one = ImageCache(tmp_path / "one", Preprocessing(size=48), Harmonization(method, serial).variant())
    fill_cache(one, pairs, transform=Harmonization(method, serial))
    with local_processes(2) as map_batches:
        parallel = fit_parameters(method, paths, map_batches, threads=2, other_paths=others)
        harmonization = Harmonization(method, parallel, threads=2)
        two = ImageCache(tmp_path / "two", Preprocessing(size=48), harmonization.variant())
        fill_cache(two, pairs, transform=harmonization, map_batches=map_batches)
    assert params_to_json(serial) == params_to_json(parallel)  # batch sums combined in order: bit for bit
    assert all(one.path_of(i.dicom_id).read_bytes() == two.path_of(i.dicom_id).read_bytes() for i in images[:40])
