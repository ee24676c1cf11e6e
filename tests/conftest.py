"""Shared fixtures: a small simulated MIMIC release written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulate.generate import SimulationSummary, simulate_dataset
from xrh.settings import Settings

FILES = Path("physionet.org/files")


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    """A simulated release of 30 patients with 64-pixel images (about 150 DICOM files) and their paired renderings on
    every other scanner, rendered by 2 workers."""
    out = tmp_path_factory.mktemp("simulated")
    summary = simulate_dataset(out, patients=30, seed=7, image_size=64, paired=True, workers=2)
    return out, summary


@pytest.fixture(scope="session")
def ingested(simulated, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a warehouse holding the simulated release's raw tables (CSV loads and DICOM headers)."""
    from ingest.csv_load import load_csv_tables
    from ingest.dicom_headers import ingest_dicom_headers
    from ingest.schemas import load_spec
    from xrh.warehouse import connect

    root, _ = simulated
    folder = tmp_path_factory.mktemp("warehouse")
    settings = Settings(data_root=root, warehouse=folder / "warehouse.sqlite", cache_dir=folder / "cache")
    project = settings.physionet_files / "mimic-cxr/2.1.0"
    with connect(settings.warehouse) as conn:
        load_csv_tables(conn, settings.warehouse, settings.physionet_files, load_spec())
        ingest_dicom_headers(conn, project / "files", stored_relative_to=project, dcm_only=True, workers=2)
    return settings


@pytest.fixture(scope="session")
def built(ingested: Settings) -> Settings:
    """The ingested warehouse after a successful `dbt build` (SQLite target)."""
    from xrh.dbt import run_dbt

    assert run_dbt(ingested, ["build"])
    return ingested
