"""The harmonization steps as recorded runs over the settings: what ``xrh harmonize`` and the ``harmonize`` flow call.

The apply step finds its fit by what it is (the latest succeeded fit of the same method, cohort, reference and split
seed), whatever code version made it; its run is keyed on the fit's run id, so applying the same fitted parameters
again is the same run. A fit or an evaluation of a method with an ``energy`` stage finds its bone model the same way:
the latest succeeded ``xrh harmonize bone-model`` run, whose run id its own parameters then name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harmonize.bench import fit_bench_bone_model, read_manifest, run_bench, set_identity
from harmonize.bench_figure import write_bench_figure
from harmonize.common import Params, params_from_json, params_to_json
from harmonize.config import BenchConfig
from harmonize.evaluate import evaluate
from harmonize.fitting import apply, fit
from harmonize.results import TABLES
from harmonize.scanners import reads_bone_model
from ingest.images import ImageCache
from xrh.artifacts import record_artifacts
from xrh.batches import BatchMapper, local_processes
from xrh.runs import latest_succeeded_run, recorded_run
from xrh.settings import Settings
from xrh.tables import replace_run_rows
from xrh.warehouse import connect

BONE_MODEL_KIND = "harmonize_bone_model"


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


def train_bone_model(settings: Settings, bench_dir: Path, *, map_batches: BatchMapper | None = None) -> str:
    """Train the bone model energy matching reads (:func:`harmonize.bench.fit_bench_bone_model`) on a bench set's
    paired renderings; store it in harm_bone_models; return the run id. Its analysis images are the bench's and share
    its cache, named by the set's identity (its truth arms are rendered by the same stamp, so that names them too)."""
    images, truth = read_manifest(bench_dir), read_manifest(bench_dir, truth=True)
    identity = set_identity(images)
    preprocessing = BenchConfig().preprocessing()
    parameters = {"bench": str(Path(bench_dir).resolve()), "set": identity, "preprocessing": preprocessing.key()}
    with _recorded_job(settings, BONE_MODEL_KIND, parameters, map_batches) as (conn, run_id, mapper):
        cache = ImageCache(settings.cache_dir / "bench_sets" / identity, preprocessing)
        fitted = fit_bench_bone_model(images, truth, cache, mapper)
        row = {
            "bench_set": f"{parameters['bench']} @ {identity}",
            "training_phantoms": fitted.training_phantoms,
            "validation_phantoms": fitted.validation_phantoms,
            "explained_share": fitted.explained,
            "ci_low": fitted.ci_low,
            "ci_high": fitted.ci_high,
            "parameters": params_to_json(fitted.model),
        }
        replace_run_rows(conn, {TABLES["harm_bone_models"]: [row]}, run_id)
        return run_id


def _bone_model(conn: sqlite3.Connection, methods: list[str]) -> tuple[str | None, Params | None]:
    """The latest trained bone model (run id, arrays) when a method has an ``energy`` stage; (None, None) when none
    has."""
    needing = [method for method in methods if reads_bone_model(method)]
    if not needing:
        return None, None
    run_id = latest_succeeded_run(conn, BONE_MODEL_KIND)
    if run_id is None:
        raise ValueError(
            f"{needing[0]!r} matches bone contrast with a bone model, and the warehouse has none: render a bench set "
            "(`xrh simulate --bench 2000 --out DIR`) and train one with `xrh harmonize bone-model --bench DIR`"
        )
    (parameters,) = conn.execute("select parameters from harm_bone_models where run_id = ?", (run_id,)).fetchone()
    return run_id, params_from_json(parameters)


def fit_method(
    settings: Settings, method: str, cohort: str, reference: str, *, map_batches: BatchMapper | None = None
) -> tuple[str, int]:
    """Fit ``method`` on the training-split images of the ``reference`` group; (run id, reference image count). The
    images' statistics are read in batches by ``map_batches``, by default in local worker processes."""
    with connect(settings.warehouse) as conn:
        bone_run, bone_model = _bone_model(conn, [method])
    parameters = _fit_parameters(settings, method, cohort, reference)
    if bone_run is not None:
        parameters["bone_model"] = bone_run
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
            bone_model=bone_model,
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
    with connect(settings.warehouse) as conn:
        bone_run, bone_model = _bone_model(conn, methods)
    if bone_run is not None:
        parameters["bone_model"] = bone_run
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
            bone_model=bone_model,
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
