"""What every flow shares: the settings, retry policy, task runner for image-heavy work and batch mapping on it.

Settings come from the environment (``XRH_*``, ``XRH_CONFIG``), as in a served deployment: the task runner and the
retry delays are fixed when the flows are loaded, the paths are read again by each flow and task (so one process can
run flows on several warehouses). ``xrh flow`` and ``xrh serve`` set ``PREFECT_HOME`` before Prefect is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff
from prefect_dask import DaskTaskRunner

from xrh.processes import ordered_results
from xrh.runs import orchestrated_by
from xrh.settings import Settings, load_settings

log = logging.getLogger(__name__)

RETRIES = 3


def settings() -> Settings:
    return load_settings()


def disk_retries() -> dict[str, Any]:
    """Task options of steps that touch the network or the disk: three retries, delays doubling from the setting."""
    return {
        "retries": RETRIES,
        "retry_delay_seconds": exponential_backoff(backoff_factor=settings().retry_delay_seconds)(RETRIES),
    }


def image_task_runner() -> DaskTaskRunner:
    """Dask for the image-heavy tasks: the configured scheduler, or a local cluster of ``workers`` processes."""
    configured = settings()
    if configured.dask_address:
        return DaskTaskRunner(address=configured.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": configured.worker_count, "threads_per_worker": 1})


def current_flow_run_id() -> str | None:
    return flow_run.id


def name_flow_run(run_id: str) -> None:
    """Name the current flow run after a job's run id, so the UI lists ``train-3f2a...`` rather than a random name;
    a server that refuses costs the name only, never the job."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=run_id)
    except Exception as error:  # the name is a convenience; the run's rows are what matter
        log.warning("flow run not renamed to %s: %s", run_id, error)


@contextmanager
def jobs_of_this_flow_run() -> Iterator[None]:
    """Job runs started inside record this flow run's id, and the flow run takes the name of each (the last job's)."""
    with orchestrated_by(current_flow_run_id(), on_run=name_flow_run):
        yield


@task(name="read batch", cache_policy=NO_CACHE, persist_result=False, **disk_retries())
def read_batch(function: Callable[[Any], Any], batch: Any) -> Any:
    """A pure read of a batch of files (e.g. DICOM headers). Its result is raw rows of credentialed data: it goes back
    to the flow in memory and into the warehouse only, never into Prefect's result storage (a re-run after a crash
    reads the unfinished files again; the finished ones were committed and are skipped as unchanged)."""
    return function(batch)


@task(name="process batch", cache_policy=NO_CACHE, persist_result=False, **disk_retries())
def process_batch(function: Callable[[Any], Any], batch: Any) -> Any:
    """A batch of image work (harmonized PNGs, cached analysis images, fit statistics, pixel samples): never cached;
    its files are written by the batch itself and its result, derived from credentialed images, goes back to the flow
    in memory only."""
    return function(batch)


def mapper_of(batch_task) -> Callable[[Callable[[Any], Any], list[Any]], Iterator[Any]]:
    """A ``BatchMapper`` (xrh.batches) that runs each batch as a task on the flow's task runner, results in order, with
    at most two batches per worker submitted and not yet read: results are dropped as they are read, so neither the
    flow nor the cluster holds more than a window of them, whatever the number of images."""

    def run(function: Callable[[Any], Any], batches: list[Any]) -> Iterator[Any]:
        return ordered_results(partial(batch_task.submit, function), batches, ahead=2 * settings().worker_count)

    return run
