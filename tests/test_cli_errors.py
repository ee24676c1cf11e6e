"""A user's common mistakes, made with the real ``xrh`` command: each ends in one line on stderr that says what is
wrong and what to do next, exit code 2 for wrong arguments and 1 for a job that cannot go on, and no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

XRH = str(Path(sys.executable).with_name("xrh"))


def xrh(*args: str, **environment: str) -> subprocess.CompletedProcess:
    variables = {key: value for key, value in os.environ.items() if not key.startswith("XRH_")}
    return subprocess.run([XRH, *args], env={**variables, **environment}, capture_output=True, text=True, timeout=300)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def built_copy(built, tmp_path) -> dict[str, str]:
    """The environment of a copy of the built warehouse (mistakes record failed runs: not in the shared one)."""
    shutil.copy(built.warehouse, tmp_path / "warehouse.sqlite")
    return {"XRH_DATA_ROOT": str(built.data_root), "XRH_WAREHOUSE": str(tmp_path / "warehouse.sqlite"),
            "XRH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip


def test_a_mistyped_data_root_names_download_and_simulate_and_creates_nothing(tmp_path):
    root = tmp_path / "mistyped"
    for step in ("csv", "dicom", "all"):
        result = xrh("ingest", step, XRH_DATA_ROOT=str(root))
        line = one_line(result)
        assert result.returncode == 1 and "xrh download" in line and "xrh simulate" in line, line
    assert not root.exists()


def test_building_without_raw_tables_says_to_ingest_first(tmp_path):
    result = xrh("build", XRH_DATA_ROOT=str(tmp_path))
    assert result.returncode == 1 and "xrh ingest all" in one_line(result)


def test_training_before_the_warehouse_exists_says_what_to_run(tmp_path):
    result = xrh("train", "--architecture", "small_cnn", XRH_DATA_ROOT=str(tmp_path))
    line = one_line(result)
    assert result.returncode == 1 and "xrh build" in line and "sqlite3" not in line, line


def test_an_image_size_the_classifiers_cannot_take_says_the_smallest(tmp_path):
    result = xrh("train", "--architecture", "small_cnn", "--image-size", "16", XRH_DATA_ROOT=str(tmp_path))
    line = one_line(result)
    assert result.returncode == 1 and "image size 16 is too small" in line and "at least 32" in line, line


def test_an_unknown_cohort_is_named_with_the_known_ones(built_copy):
    result = xrh("train", "--cohort", "nosuch", "--architecture", "small_cnn", **built_copy)
    line = one_line(result)
    assert result.returncode == 1 and "no cohort 'nosuch'" in line and "scanner_d110_vs_s120" in line, line


def test_a_cohort_without_the_split_of_the_seed_names_the_split_command(built_copy):
    result = xrh("harmonize", "fit", "--method", "cdf", **built_copy, XRH_SEED="77")
    line = one_line(result)
    assert result.returncode == 1 and "xrh split --cohort scanner_d110_vs_s120 --scheme standard --seed 77" in line


def test_device_settings_are_checked(built_copy):
    result = xrh("settings", XRH_DEVICE="gpu")
    assert result.returncode == 2 and "auto, cpu, cuda or cuda:N" in result.stderr
    result = xrh("train", "--architecture", "small_cnn", XRH_DEVICE="cuda:7", **built_copy)
    line = one_line(result)
    assert result.returncode == 1 and "XRH_DEVICE=auto or cpu" in line, line


def test_dbt_without_a_command_is_a_usage_error():
    result = xrh("dbt")
    assert result.returncode == 2 and "xrh dbt test --select" in one_line(result)


def test_debug_shows_the_traceback(tmp_path):
    result = xrh("--debug", "build", XRH_DATA_ROOT=str(tmp_path))
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_bench_without_a_rendered_set_names_the_command_that_makes_one(tmp_path):
    line = one_line(xrh("harmonize", "bench", "--bench", str(tmp_path / "nothing"), XRH_DATA_ROOT=str(tmp_path)))
    assert "no bench manifest" in line and "xrh simulate --bench" in line
