"""The package as a user installs it: a wheel built from the tracked sources, installed into a fresh environment,
runs `xrh build` from a folder outside the repository (the dbt project and its profile ship inside)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (without network) from a copy of the package sources, not from the working tree's leftovers."""
    source = tmp_path_factory.mktemp("source")
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPOSITORY / name, source / name)
    ignored = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages")
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        for package in REPOSITORY.glob(pattern.rstrip("*")):
            if (package / "__init__.py").exists():
                shutil.copytree(package, source / package.name, ignore=ignored)
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=source,
    )
    (built,) = out.glob("xrh-*.whl")
    return built


def test_the_wheel_ships_the_dbt_project_and_its_profile_without_build_outputs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"xrh/dbt_project/dbt_project.yml", "xrh/dbt_project/profiles.yml"} <= names
    assert "xrh/dbt_project/models/staging/__sources.yml" in names
    assert any(n.startswith("xrh/dbt_project/seeds/") and n.endswith(".csv") for n in names)
    assert not any("/target/" in n or "/logs/" in n for n in names)


@pytest.mark.slow
def test_an_installed_xrh_builds_the_warehouse_from_any_folder(wheel, ingested, tmp_path):
    # A fresh environment whose only xrh is the wheel's; the pinned dependencies come from this one's site-packages.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    purelib = Path(
        _run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    (purelib / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin/python"),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ]
    )
    warehouse = tmp_path / "warehouse.sqlite"
    shutil.copy(ingested.warehouse, warehouse)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XRH_DATA_ROOT": str(ingested.data_root),
        "XRH_WAREHOUSE": str(warehouse),
        "XRH_CACHE_DIR": str(tmp_path / "cache"),
    }
    where = _run(
        [str(venv / "bin/python"), "-c", "import xrh.dbt; print(xrh.dbt.DBT_PROJECT_DIR)"],
        cwd=elsewhere,
        env=environment,
    ).stdout.strip()
    assert Path(where).is_relative_to(purelib)  # the installed copy, not this checkout
    result = subprocess.run(
        [str(venv / "bin/xrh"), "build"], cwd=elsewhere, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("select count(*) from acquisition").fetchone()[0] > 0
    assert not list(Path(where).glob("target")), "dbt wrote into the installed package"
    assert (tmp_path / "cache" / "dbt_target" / "manifest.json").exists()
