"""Fit on a reference group's training images, apply to the cohort: harm_params, 16-bit PNGs and harm_images."""

from __future__ import annotations

import numpy as np
import pytest

from harmonize.common import params_from_json
from harmonize.jobs import apply, fit, load_values, read_png16
from harmonize.methods import IMAGE_METHODS, image_method
from models_ml.splits import split_cohort
from xrh.warehouse import connect


@pytest.mark.parametrize("method", ["cdf", "bands"])
def test_fit_then_apply_writes_parameters_images_and_index(built, method):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        fitted = fit(conn, built.mimic_cxr, method, "scanner_d110_vs_s120", "D110", f"fit-{method}")
        count = apply(conn, built.mimic_cxr, built.cache_dir, f"fit-{method}", f"apply-{method}")
        reference_images = conn.execute(
            "select reference_images from harm_params where run_id = ?", (f"fit-{method}",)
        ).fetchone()[0]
        rows = conn.execute("select dicom_id, path from harm_images where run_id = ?", (f"apply-{method}",)).fetchall()
        parameters = conn.execute("select parameters from harm_params where run_id = ?", (f"fit-{method}",)).fetchone()
        source = conn.execute(
            "select c.dicom_path from cohort_images as c where c.dicom_id = ?", (rows[0][0],)
        ).fetchone()[0]
    assert fitted == reference_images > 0 and count == len(rows) > 0
    harmonized = read_png16(rows[0][1])
    original = load_values(built.mimic_cxr / source)
    assert harmonized.dtype == np.uint16 and harmonized.shape == original.shape
    expected = image_method(method).apply(original, params_from_json(parameters[0]))
    assert np.abs(harmonized.astype(float) - np.rint(expected)).max() <= 1


def test_unknown_method_and_missing_reference_are_clear_errors(built):
    with connect(built.warehouse) as conn:
        split_cohort(conn, "scanner_d110_vs_s120", run_id="split")
        with pytest.raises(ValueError, match="unknown harmonization method 'magic'"):
            fit(conn, built.mimic_cxr, "magic", "scanner_d110_vs_s120", "D110", "x")
        with pytest.raises(ValueError, match="no training images of reference group 'D90'"):
            fit(conn, built.mimic_cxr, "cdf", "scanner_d110_vs_s120", "D90", "x")
        with pytest.raises(ValueError, match="no fitted parameters for run 'nope'"):
            apply(conn, built.mimic_cxr, built.cache_dir, "nope", "y")
    assert len(IMAGE_METHODS) == 8
