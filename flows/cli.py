"""``xrh flow NAME`` runs one flow now; ``xrh serve`` serves the pipeline and the ingest-and-build flow on their cron
schedules. Both give Prefect its own home (``prefect_home``), never the warehouse, before Prefect is imported."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

import yaml

from xrh.errors import UsageError
from xrh.settings import Settings

FLOWS = {
    "pipeline": "flows.pipeline:pipeline_flow",
    "ingest_and_build": "flows.pipeline:ingest_and_build_flow",
    "download": "flows.ingestion:download_flow",
    "ingest": "flows.ingestion:ingest_flow",
    "build_warehouse": "flows.warehouse:build_warehouse_flow",
    "train": "flows.models:train_flow",
    "features": "flows.models:features_flow",
    "harmonize": "flows.harmonization:harmonize_flow",
    "bench": "flows.harmonization:bench_flow",
    "bone_model": "flows.harmonization:bone_model_flow",
    "report": "flows.report:report_flow",
}


def prefect_environment(settings: Settings, config: str | None) -> None:
    """Environment for Prefect and for the flows' own settings: set before Prefect is imported."""
    if config:
        os.environ["XRH_CONFIG"] = str(Path(config).resolve())
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home.resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    for chatty in ("httpx", "distributed", "prefect.server"):  # one line per API call or worker event otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)


SERVER_START_SECONDS = 90


@contextmanager
def prefect_api() -> Iterator[None]:
    """The API of ``PREFECT_API_URL``, or one temporary local server for the whole command, its address exported so
    the Dask workers report to it too (each would start a server of its own otherwise)."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    try:
        # Prefect's default of 20 s is too short on a small machine busy with other jobs.
        server.start(timeout=SERVER_START_SECONDS)
    except RuntimeError as error:
        raise OSError(
            f"the temporary Prefect server did not answer within {SERVER_START_SECONDS} s ({error}); retry when the "
            "machine is less busy, or start one with `prefect server start` and set PREFECT_API_URL"
        ) from error
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # the last log lines, while the server still listens
        del os.environ["PREFECT_API_URL"]
        server.stop()


def load_flow(name: str):
    module, attribute = FLOWS[name].split(":")
    return getattr(import_module(module), attribute)


def _parameters(pairs: list[str]) -> dict[str, object]:
    parameters = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE")
        parameters[name.replace("-", "_")] = yaml.safe_load(value)
    return parameters


def flow_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one flow now (Prefect records it; with no PREFECT_API_URL a temporary local server is started)."""
    parameters = _parameters(args.param or [])
    prefect_environment(settings, args.config)
    with prefect_api():
        state = load_flow(args.name)(**parameters, return_state=True)
    print(f"flow {args.name}: {state.name}")
    return 0 if state.is_completed() else 1


def deployments(settings: Settings) -> list:
    """The served deployments: the pipeline weekly and ingest-and-build nightly, on the settings' cron schedules."""
    return [
        load_flow("pipeline").to_deployment(name="scheduled-pipeline", cron=settings.pipeline_cron),
        load_flow("ingest_and_build").to_deployment(name="nightly-ingest-and-build", cron=settings.ingest_cron),
    ]


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the pipeline and ingest-and-build flows on their cron schedules until interrupted (set PREFECT_API_URL to a
    running `prefect server start` to see and trigger them in the Prefect UI)."""
    prefect_environment(settings, args.config)
    from prefect import serve

    with prefect_api():
        serve(*deployments(settings))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("flow", help="run a Prefect flow now", description=flow_command.__doc__)
    run.add_argument("name", choices=sorted(FLOWS), help="which flow")
    run.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="a flow parameter, the value as YAML (repeatable)"
    )
    run.set_defaults(handler=flow_command)
    serve = subparsers.add_parser("serve", help="serve the flows on cron schedules", description=serve_command.__doc__)
    serve.set_defaults(handler=serve_command)
