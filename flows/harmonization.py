"""The ``harmonize`` flow: fit each method on the reference group, apply it to the cohort, evaluate every method, and
rebuild the leaderboard mart; the ``bench`` flow, the powered benchmark on a paired bench set; and the
``bone_model`` flow, the bone model energy matching reads, trained on a bench set. Every image batch
(fit statistics, harmonized images, the evaluations' analysis images and inspections) is a task on the Dask task
runner; the steps themselves run in the flow, which writes the warehouse."""

from __future__ import annotations

from prefect import flow

from flows.common import image_task_runner, jobs_of_this_flow_run, mapper_of, process_batch, settings
from flows.models import split_task
from flows.warehouse import build_selected
from harmonize.config import ANALYSIS_FIELD_MM, BenchConfig
from harmonize.jobs import apply_method, bench_methods, evaluate_methods, fit_method, train_bone_model
from harmonize.results import EVALUATION_EPOCHS


@flow(name="harmonize", log_prints=True, task_runner=image_task_runner())
def harmonize_flow(
    cohort: str | None = None,
    reference: str | None = None,
    apply_methods: list[str] | None = None,
    evaluate: list[str] | None = None,
    epochs: int = EVALUATION_EPOCHS,
    size: int | None = None,
    field_mm: float = ANALYSIS_FIELD_MM,
    diagnostic_cohort: str | None = "abnormal_vs_healthy",
    external_group: str | None = None,
) -> str:
    """Fit and apply ``apply_methods`` (default cdf), evaluate ``evaluate`` (default cdf, fda, bands, physics, combat)
    against no harmonization; with a diagnostic cohort also the Zech et al. experiment. The cohort, reference and
    external group default to their settings. Returns the evaluation run id."""
    configured = settings()
    cohort = cohort or configured.cohort
    reference = reference or configured.reference_group
    external_group = external_group or configured.external_group
    on_dask = mapper_of(process_batch)
    with jobs_of_this_flow_run():
        for method in apply_methods or ["cdf"]:
            run_id, count = fit_method(configured, method, cohort, reference, map_batches=on_dask)
            print(f"{method} fitted on {count} training images of {reference} (run {run_id})")
            run_id, count = apply_method(configured, method, cohort, reference, map_batches=on_dask)
            print(f"{method}: {count} harmonized images (run {run_id})")
        if diagnostic_cohort:
            split_task(diagnostic_cohort, "standard")
        evaluation = evaluate_methods(
            configured,
            cohort=cohort,
            reference=reference,
            methods=evaluate or ["cdf", "fda", "bands", "physics", "combat"],
            epochs=epochs,
            size=size,
            field_mm=field_mm,
            diagnostic_cohort=diagnostic_cohort,
            external_group=external_group if diagnostic_cohort else None,
            map_batches=on_dask,
        )
        build_selected("harmonization_leaderboard")
    return evaluation


@flow(name="bench", log_prints=True, task_runner=image_task_runner())
def bench_flow(
    bench: str,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    size: int = BenchConfig.size,
    epochs: int = BenchConfig.epochs,
    field_mm: float = BenchConfig.field_mm,
    equalize: bool = BenchConfig.equalize,
) -> str:
    """The powered benchmark on the paired bench set in ``bench`` (``xrh simulate --bench``); its image batches on the
    Dask task runner. Returns the run id of its ``harm_bench`` rows."""
    config = BenchConfig(
        methods=tuple(methods or BenchConfig.methods),
        seeds=tuple(seeds or BenchConfig.seeds),
        size=size,
        epochs=epochs,
        field_mm=field_mm,
        equalize=equalize,
    )
    with jobs_of_this_flow_run():
        run_id = bench_methods(settings(), bench, config, map_batches=mapper_of(process_batch))
    print(f"bench run {run_id}: rows in harm_bench")
    return run_id


@flow(name="bone_model", log_prints=True, task_runner=image_task_runner())
def bone_model_flow(bench: str) -> str:
    """Train the bone model that energy matching (energy, physics_energy) reads on the paired bench set in ``bench``;
    its image batches on the Dask task runner. Returns the run id of its ``harm_bone_models`` row."""
    with jobs_of_this_flow_run():
        run_id = train_bone_model(settings(), bench, map_batches=mapper_of(process_batch))
    print(f"bone model {run_id}: a row in harm_bone_models")
    return run_id
