"""The harmonization steps as recorded runs over the settings: what ``xrh harmonize`` and the ``harmonize`` flow call.

The apply step finds its fit by what it is (the latest succeeded fit of the same method, cohort, reference and split
seed), whatever code version made it; its run is keyed on the fit's run id, so applying the same fitted parameters
again is the same run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harmonize.bench import run_bench
from harmonize.bench_figure import write_bench_figure
from harmonize.config import BenchConfig
from harmonize.evaluate import evaluate
from harmonize.fitting import apply, fit
from xrh.artifacts import record_artifacts
from xrh.batches import BatchMapper, local_processes
from xrh.runs import latest_succeeded_run, recorded_run
from xrh.settings import Settings
from xrh.warehouse import connect


@contextmanager
def _recorded_job(
    settings: Settings, kind: str, parameters: dict[str, object], map_batches: BatchMapper | None
) -> Iterator[tuple[sqlite3.Connection, str, BatchMapper]]:
    """(connection, run id, batch mapper) of one recorded run whose image batches go to ``map_batches``, by default
    to local worker processes."""
    with (
        connect(settings.warehouse) as conn,
        recorded_run(conn, kind, parameters) as run,
        local_processes(settings.worker_count, map_batches) as mapper,
    ):
        yield conn, run.run_id, mapper


def _fit_parameters(settings: Settings, method: str, cohort: str, reference: str) -> dict[str, object]:
    return {"method": method, "cohort": cohort, "reference": reference, "split_seed": settings.seed}


def fit_method(
    settings: Settings, method: str, cohort: str, reference: str, *, map_batches: BatchMapper | None = None
) -> tuple[str, int]:
    """Fit ``method`` on the training-split images of the ``reference`` group; (run id, reference image count). The
    images' statistics are read in batches by ``map_batches``, by default in local worker processes."""
    parameters = _fit_parameters(settings, method, cohort, reference)
    with _recorded_job(settings, "harmonize_fit", parameters, map_batches) as (conn, run_id, mapper):
        count = fit(
            conn,
            settings.mimic_cxr,
            method,
            cohort,
            reference,
            run_id,
            split_seed=settings.seed,
            map_batches=mapper,
            threads=settings.thread_count,
        )
        return run_id, count


def apply_method(
    settings: Settings, method: str, cohort: str, reference: str, *, map_batches: BatchMapper | None = None
) -> tuple[str, int]:
    """Apply the fitted ``method`` to every image of the cohort; (run id, image count). PNGs and harm_images; the
    images are harmonized in batches by ``map_batches``, by default in local worker processes."""
    with connect(settings.warehouse) as conn:
        fit_run_id = latest_succeeded_run(conn, "harmonize_fit", _fit_parameters(settings, method, cohort, reference))
    if fit_run_id is None:
        raise ValueError(
            f"no finished fit of {method!r} on reference {reference!r} of cohort {cohort!r} (split seed "
            f"{settings.seed}); run `xrh harmonize fit --method {method} --reference {reference} --cohort {cohort}`"
        )
    with _recorded_job(settings, "harmonize_apply", {"fit_run": fit_run_id}, map_batches) as (conn, run_id, mapper):
        count = apply(
            conn,
            settings.mimic_cxr,
            settings.cache_dir,
            fit_run_id,
            run_id,
            split_seed=settings.seed,
            map_batches=mapper,
            threads=settings.thread_count,
        )
        return run_id, count


def evaluate_methods(
    settings: Settings,
    *,
    cohort: str,
    reference: str,
    methods: list[str],
    epochs: int,
    field_mm: float,
    size: int | None = None,
    diagnostic_cohort: str | None = None,
    external_group: str | None = None,
    map_batches: BatchMapper | None = None,
) -> str:
    """The harmonization benchmark (``harmonize.evaluate``); returns the evaluation's run id. Its image steps run in
    batches by ``map_batches``, by default in local worker processes."""
    parameters = {
        "cohort": cohort,
        "reference": reference,
        "methods": methods,
        "epochs": epochs,
        "size": size,
        "field_mm": field_mm,
        "diagnostic_cohort": diagnostic_cohort,
        "external_group": external_group,
    }
    with _recorded_job(settings, "harmonize_evaluate", parameters, map_batches) as (conn, run_id, mapper):
        evaluate(
            conn,
            settings,
            cohort=cohort,
            reference=reference,
            methods=methods,
            run_id=run_id,
            epochs=epochs,
            size=size,
            field_mm=field_mm,
            diagnostic_cohort=diagnostic_cohort,
            external_group=external_group,
            map_batches=mapper,
        )
        return run_id


def bench_methods(
    settings: Settings, bench_dir: Path, config: BenchConfig, map_batches: BatchMapper | None = None
) -> str:
    """The powered benchmark (``harmonize.bench``) as a recorded run; returns its run id."""
    parameters = {
        "bench": str(Path(bench_dir).resolve()),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
    }
    with _recorded_job(settings, "harmonize_bench", parameters, map_batches) as (conn, run_id, mapper):
        rows = run_bench(
            conn,
            Path(bench_dir),
            settings.cache_dir,
            config,
            run_id,
            map_batches=mapper,
            device_setting=settings.device,
        )
        figure = write_bench_figure(rows, settings.cache_dir / "bench" / f"{run_id}.png")
        record_artifacts(conn, settings.cache_dir, run_id, {"bench_figure": figure})
        return run_id
