"""The ``pipeline`` flow chains the stage flows for the data root and config of the settings; ``ingest_and_build``
is the nightly part alone (new files in, warehouse rebuilt)."""

from __future__ import annotations

from prefect import flow

from flows.common import current_flow_run_id, settings
from flows.harmonization import harmonize_flow
from flows.ingestion import ingest_flow
from flows.models import features_flow, train_flow
from flows.report import report_flow
from flows.warehouse import build_warehouse_flow
from harmonize.config import ANALYSIS_FIELD_MM
from harmonize.results import EVALUATION_EPOCHS


@flow(name="ingest_and_build", log_prints=True)
def ingest_and_build_flow(target: str = "sqlite") -> None:
    """Ingest new and changed files, then rebuild and test the warehouse."""
    ingest_flow()
    build_warehouse_flow(target)


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    cohort: str | None = None,
    reference: str | None = None,
    architecture: str | None = None,
    image_size: int | None = None,
    epochs: int | None = None,
    patience: int | None = None,
    evaluation_epochs: int = EVALUATION_EPOCHS,
    evaluation_size: int | None = None,
    evaluation_field_mm: float = ANALYSIS_FIELD_MM,
    evaluate: list[str] | None = None,
    diagnostic_cohort: str | None = "abnormal_vs_healthy",
    external_group: str | None = None,
    target: str = "sqlite",
) -> dict[str, str]:
    """Ingest, build the warehouse, train the scanner classifier, analyse its features, harmonize and evaluate, and
    write the report. Returns where the warehouse, the report and this flow run are. Parameters left out take the
    settings (cohort, reference and external group) and TrainConfig's defaults (the demo passes a small CNN)."""
    ingest_and_build_flow(target)
    train_flow(cohort, architecture, image_size, epochs, patience)
    features_flow(cohort)
    harmonize_flow(
        cohort,
        reference,
        evaluate=evaluate,
        epochs=evaluation_epochs,
        size=evaluation_size,
        field_mm=evaluation_field_mm,
        diagnostic_cohort=diagnostic_cohort,
        external_group=external_group,
    )
    report = report_flow()
    configured = settings()
    where = {
        "warehouse": str(configured.warehouse.resolve()),
        "report": report,
        "prefect_flow_run": str(current_flow_run_id()),
        "prefect_home": str(configured.prefect_home.resolve()),
    }
    for name, value in where.items():
        print(f"{name}: {value}")
    return where
