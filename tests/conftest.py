"""Shared fixtures: a small simulated MIMIC release written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulate.generate import SimulationSummary, simulate_dataset

FILES = Path("physionet.org/files")


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    """A simulated release of 30 patients with 64-pixel images (about 150 DICOM files), rendered by 2 workers."""
    out = tmp_path_factory.mktemp("simulated")
    summary = simulate_dataset(out, patients=30, seed=7, image_size=64, workers=2)
    return out, summary
