"""The ``harmonize`` flow: fit each method on the reference group, apply it to the cohort with the image batches
mapped over the Dask task runner, evaluate every method, and rebuild the leaderboard mart."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import current_flow_run_id, image_task_runner, mapper_of, process_batch, settings
from flows.models import split_task
from flows.warehouse import build_selected
from harmonize.jobs import apply_method, evaluate_methods, fit_method
from harmonize.results import EVALUATION_EPOCHS
from xrh.runs import orchestrated_by


@task(name="fit method", cache_policy=NO_CACHE)
def fit_task(method: str, cohort: str, reference: str) -> str:
    run_id, count = fit_method(settings(), method, cohort, reference)
    print(f"{method} fitted on {count} training images of {reference} (run {run_id})")
    return run_id


@task(name="evaluate methods", cache_policy=NO_CACHE)
def evaluate_task(
    cohort: str,
    reference: str,
    methods: list[str],
    epochs: int,
    diagnostic_cohort: str | None,
    external_group: str | None,
) -> str:
    return evaluate_methods(
        settings(),
        cohort=cohort,
        reference=reference,
        methods=methods,
        epochs=epochs,
        diagnostic_cohort=diagnostic_cohort,
        external_group=external_group,
    )


@flow(name="harmonize", log_prints=True, task_runner=image_task_runner())
def harmonize_flow(
    cohort: str | None = None,
    reference: str | None = None,
    apply_methods: list[str] | None = None,
    evaluate: list[str] | None = None,
    epochs: int = EVALUATION_EPOCHS,
    diagnostic_cohort: str | None = "abnormal_vs_healthy",
    external_group: str | None = None,
) -> str:
    """Fit and apply ``apply_methods`` (default cdf), evaluate ``evaluate`` (default cdf, fda, bands, combat) against no
    harmonization; with a diagnostic cohort also the Zech et al. experiment. The cohort, reference and external group
    default to their settings. Returns the evaluation run id."""
    configured = settings()
    cohort = cohort or configured.cohort
    reference = reference or configured.reference_group
    external_group = external_group or configured.external_group
    with orchestrated_by(current_flow_run_id()):
        for method in apply_methods or ["cdf"]:
            fit_task(method, cohort, reference)
            run_id, count = apply_method(configured, method, cohort, reference, map_batches=mapper_of(process_batch))
            print(f"{method}: {count} harmonized images (run {run_id})")
        if diagnostic_cohort:
            split_task(diagnostic_cohort, "standard")
        evaluation = evaluate_task(
            cohort,
            reference,
            evaluate or ["cdf", "fda", "bands", "combat"],
            epochs,
            diagnostic_cohort,
            external_group if diagnostic_cohort else None,
        )
        build_selected("harmonization_leaderboard")
    return evaluation
