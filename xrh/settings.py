"""One settings object for every part of the project.

Values come, in order of precedence, from environment variables (``XRH_*``), an optional YAML file (``XRH_CONFIG`` or
``--config``) and the defaults below, which keep everything under ``./data/`` (ignored by git).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

DEFAULT_DATA_DIR = Path("data")


@dataclass(frozen=True)
class Settings:
    """Where things live and how jobs run.

    Attributes
    ----------
    data_root
        The folder that holds ``physionet.org/`` (a ``wget -r`` mirror, or what ``xrh simulate`` wrote).
    warehouse
        The SQLite warehouse file.
    cache_dir
        Preprocessed images, checkpoints and other derived files that can be rebuilt.
    seed
        The random seed every job starts from.
    device
        ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    physionet_base_url
        Where PhysioNet projects are served (``<base>/<project>/<version>/...``).
    workers
        Worker processes or connections for parallel steps (0: one per CPU).
    threads
        Threads each worker process gives one image's numpy and FFT work (0: the CPUs shared out over the workers).
    prefect_home
        Prefect's own folder (its database, results and logs); never the warehouse. Default ``<data_root>/prefect``.
    dask_address
        A Dask scheduler (``tcp://host:8786``) for the flows' image-heavy tasks; empty: a local cluster of
        ``workers`` processes.
    pipeline_cron, ingest_cron
        Schedules of ``xrh serve``: the whole pipeline, and ingest plus warehouse build alone.
    retry_delay_seconds
        First delay before a failed disk or network step of a flow is retried (it doubles on each retry).
    cohort, reference_group, external_group
        The experiment every command and flow works on unless told otherwise: the cohort (of the dbt var ``cohorts``),
        the energy group harmonization aligns to, and the group the Zech et al. pathology model never sees.
    """

    data_root: Path = DEFAULT_DATA_DIR
    warehouse: Path = DEFAULT_DATA_DIR / "warehouse.sqlite"
    cache_dir: Path = DEFAULT_DATA_DIR / "cache"
    seed: int = 0
    device: str = "auto"
    physionet_base_url: str = "https://physionet.org/files/"
    workers: int = 0
    threads: int = 0
    prefect_home: Path = DEFAULT_DATA_DIR / "prefect"
    dask_address: str = ""
    pipeline_cron: str = "0 3 * * 0"
    ingest_cron: str = "0 1 * * *"
    retry_delay_seconds: float = 10.0
    cohort: str = "scanner_d110_vs_s120"
    reference_group: str = "D110"
    external_group: str = "S120"

    @property
    def worker_count(self) -> int:
        """``workers``, or one per CPU when it is 0."""
        return self.workers or os.cpu_count() or 1

    @property
    def thread_count(self) -> int:
        """``threads``, or the CPUs divided among the worker processes (at least one) when it is 0."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.worker_count)

    @property
    def physionet_files(self) -> Path:
        """``<data_root>/physionet.org/files``: the parent of every PhysioNet project folder."""
        return self.data_root / "physionet.org" / "files"

    @property
    def mimic_cxr(self) -> Path:
        """The MIMIC-CXR project folder, to which the warehouse's DICOM paths (``files/p10/...``) are relative."""
        return self.physionet_files / "mimic-cxr" / "2.1.0"


def device_name(value: str) -> str:
    """one of auto, cpu, cuda or cuda:N"""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(value)):
        raise ValueError(f"device {value!r} is not one of auto, cpu, cuda or cuda:N")
    return str(value)


def count(value: object) -> int:
    """a count: 0 (chosen from the CPUs) or more"""
    number = int(value)
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return number


_ENV_PREFIX = "XRH_"
_CONVERTERS = {
    "data_root": Path,
    "warehouse": Path,
    "cache_dir": Path,
    "seed": int,
    "device": device_name,
    "physionet_base_url": str,
    "workers": count,
    "threads": count,
    "prefect_home": Path,
    "dask_address": str,
    "pipeline_cron": str,
    "ingest_cron": str,
    "retry_delay_seconds": float,
    "cohort": str,
    "reference_group": str,
    "external_group": str,
}


def _coerce(source: str, key: str, value: object) -> object:
    try:
        return _CONVERTERS[key](value)
    except (TypeError, ValueError) as error:
        converter = _CONVERTERS[key]
        expected = converter.__doc__ if converter not in (int, float, str, Path) else f"a valid {converter.__name__}"
        raise ValueError(f"{source}: setting {key!r} = {value!r} is not {expected}") from error


def load_settings(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, then the YAML file, then ``XRH_*`` environment variables.

    A data root chosen in the file or the environment moves the warehouse and cache defaults inside it, unless they
    are chosen too.

    Raises
    ------
    ValueError
        An unknown key in the YAML file or a value of the wrong type; the message names the file or variable.
    """
    environ = os.environ if environ is None else environ
    chosen: dict[str, object] = {}
    config_file = config_file or environ.get("XRH_CONFIG")
    if config_file:
        path = Path(config_file)
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of setting names to values, got {type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(_CONVERTERS))
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(_CONVERTERS)}")
        chosen.update({key: _coerce(str(path), key, value) for key, value in loaded.items()})
    for field in fields(Settings):
        variable = _ENV_PREFIX + field.name.upper()
        if variable in environ:
            chosen[field.name] = _coerce(variable, field.name, environ[variable])
    data_root = Path(chosen.get("data_root", DEFAULT_DATA_DIR))
    derived = {
        "warehouse": data_root / "warehouse.sqlite",
        "cache_dir": data_root / "cache",
        "prefect_home": data_root / "prefect",
    }
    return Settings(**{**derived, **chosen})
