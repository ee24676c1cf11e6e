"""The real Prefect flows under Prefect's test harness (its own database and PREFECT_HOME) on the tiny simulated
release: the pipeline completes and records its flow runs, a second run hits the caches, and a step that fails once is
retried and ends with the same tables as a clean run."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from xrh.warehouse import connect, table_columns, table_exists

TINY = {
    "architecture": "small_cnn",
    "image_size": 32,
    "epochs": 2,
    "patience": 1,
    "evaluation_epochs": 2,
    "evaluate": ["cdf", "combat"],
    "diagnostic_cohort": "abnormal_vs_healthy",
    "external_group": "D90",
}


@pytest.fixture(scope="module")
def flow_settings(simulated, tmp_path_factory):
    """Environment for the flows (read when they load): the simulated files, a warehouse and cache of their own,
    short retry delays; Prefect's home and database in a temporary folder, its API exported for the Dask workers."""
    root, _ = simulated
    work = tmp_path_factory.mktemp("flows")
    home = tmp_path_factory.mktemp("prefect_home")
    environment = {
        "XRH_DATA_ROOT": str(root),
        "XRH_WAREHOUSE": str(work / "warehouse.sqlite"),
        "XRH_CACHE_DIR": str(work / "cache"),
        "XRH_RETRY_DELAY_SECONDS": "1",
        "XRH_WORKERS": "2",
        "PREFECT_HOME": str(home),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        import prefect.settings
        from prefect.testing.utilities import prefect_test_harness

        with prefect.settings.temporary_settings({prefect.settings.PREFECT_HOME: home}), prefect_test_harness():
            patch.setenv("PREFECT_API_URL", prefect.settings.PREFECT_API_URL.value())
            yield work


def _task_states(name: str, since: datetime) -> list[str]:
    """The states of the task runs called ``name`` created since ``since``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=name)))
    return [run.state.name for run in runs if run.state is not None and run.expected_start_time >= since]


def _contents(warehouse: Path, table: str) -> list[tuple]:
    with connect(warehouse, readonly=True) as conn:
        columns = ", ".join(c for c in table_columns(conn, table) if c != "_loaded_at")
        return conn.execute(f"select {columns} from {table} order by 1, 2").fetchall()


def test_pipeline_runs_records_reports_and_hits_the_caches_when_run_again(flow_settings):
    from flows.pipeline import pipeline_flow

    where = pipeline_flow(**TINY)
    warehouse = flow_settings / "warehouse.sqlite"
    with connect(warehouse, readonly=True) as conn:
        runs = dict(conn.execute("select kind, prefect_flow_run_id from runs"))
        run_ids = dict(conn.execute("select kind, run_id from runs"))
        evaluation = conn.execute("select count(*) from harm_evaluation").fetchone()[0]
        leaderboard = conn.execute("select method from harmonization_leaderboard").fetchall()
    for kind in ("ingest_csv", "ingest_dicom", "build_warehouse", "split", "train", "features", "harmonize_evaluate"):
        assert runs[kind], f"{kind} has no Prefect flow run id"
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # each flow run is named after the last job it ran
        for kind in ("build_warehouse", "train", "features", "harmonize_evaluate"):
            assert client.read_flow_run(UUID(runs[kind])).name == run_ids[kind]
        images = [a for a in client.read_artifacts() if a.type == "image"]
    assert images and all(str(a.data).startswith("data:image/png;base64,") for a in images)
    assert evaluation > 0 and {m for (m,) in leaderboard} == {"none", "cdf", "combat"}
    report = Path(where["report"]).read_text()
    assert "Harmonization leaderboard" in report and "data:image/png;base64," in report
    assert where["warehouse"] == str(warehouse.resolve())
    trained = _contents(warehouse, "ml_predictions")

    second_run = datetime.now(UTC)
    pipeline_flow(**TINY)
    assert _task_states("train classifier", second_run) == ["Cached"]
    assert _task_states("extract and analyse features", second_run) == ["Cached"]
    assert _contents(warehouse, "ml_predictions") == trained


def test_a_step_that_fails_once_is_retried_and_ends_with_the_clean_tables(flow_settings, simulated, monkeypatch):
    """The patients file is cut short (a copy still being written) until the first attempt has failed."""
    from flows.ingestion import ingest_flow

    root, _ = simulated
    clean = flow_settings / "clean.sqlite"
    monkeypatch.setenv("XRH_WAREHOUSE", str(clean))
    ingest_flow()

    retried = flow_settings / "retried.sqlite"
    monkeypatch.setenv("XRH_WAREHOUSE", str(retried))
    patients = root / "physionet.org/files/mimiciv/3.1/hosp/patients.csv.gz"
    original = patients.read_bytes()
    patients.write_bytes(original[: len(original) // 2])

    def restore_after_the_first_failure() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if retried.exists():
                with connect(retried, readonly=True) as conn:
                    if (
                        table_exists(conn, "runs")
                        and conn.execute(
                            "select 1 from runs where kind = 'ingest_csv' and status = 'failed'"
                        ).fetchone()
                    ):
                        break
            time.sleep(0.05)
        patients.write_bytes(original)

    retried_run = datetime.now(UTC)
    restorer = threading.Thread(target=restore_after_the_first_failure)
    restorer.start()
    try:
        state = ingest_flow(return_state=True)
    finally:
        restorer.join()
        patients.write_bytes(original)
    assert state.is_completed()
    with connect(retried, readonly=True) as conn:
        attempts, status = conn.execute("select attempts, status from runs where kind = 'ingest_csv'").fetchone()
    assert attempts >= 2 and status == "succeeded"
    assert _task_states("read batch", retried_run)  # the DICOM walk ran through the flow's tasks
    # Raw header rows (credentialed data, header bytes starting with the DICOM preamble) never land in Prefect's home.
    home = Path(os.environ["PREFECT_HOME"])
    assert not [path for path in home.rglob("*") if path.is_file() and b"DICM" in path.read_bytes()]
    for table in (
        "raw_mimiciv_hosp__patients",
        "raw_mimiciv_hosp__admissions",
        "raw_mimic_cxr_jpg__metadata",
        "raw_dicom_headers",
    ):
        assert _contents(retried, table) == _contents(clean, table), table


def test_served_deployments_carry_the_cron_schedules(flow_settings):
    from flows.cli import deployments
    from xrh.settings import load_settings

    settings = load_settings()
    served = {d.name: d for d in deployments(settings)}
    crons = {name: [s.schedule.cron for s in d.schedules] for name, d in served.items()}
    assert crons == {
        "scheduled-pipeline": [settings.pipeline_cron],
        "nightly-ingest-and-build": [settings.ingest_cron],
    }


@pytest.mark.slow
def test_prefect_yaml_deploys_every_flow_with_the_served_schedules(flow_settings):
    import subprocess
    import sys

    from prefect.client.orchestration import get_client

    from flows.cli import FLOWS, deployments
    from xrh.settings import load_settings

    repository = Path(__file__).resolve().parent.parent
    prefect = str(Path(sys.executable).with_name("prefect"))
    for command in (["work-pool", "create", "xrh", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
        subprocess.run([prefect, *command], cwd=repository, check=True, capture_output=True)
    with get_client(sync_client=True) as client:
        deployed = {d.name: d for d in client.read_deployments()}
    assert {d.entrypoint for d in deployed.values()} == set(FLOWS.values())
    for name, served in {d.name: d for d in deployments(load_settings())}.items():
        assert [s.schedule.cron for s in deployed[name].schedules] == [s.schedule.cron for s in served.schedules]


def test_flow_modules_never_shadow_the_packages():
    """A served deployment loads its flow as a script, with ``flows/`` first on the path: a module there named like a
    package (``ingest``, ``harmonize``) would hide that package from every import."""
    repository = Path(__file__).resolve().parent.parent
    packages = {p.name for p in repository.iterdir() if (p / "__init__.py").exists()}
    assert packages >= {"xrh", "ingest", "harmonize", "models_ml", "simulate", "flows"}
    assert not {module.stem for module in (repository / "flows").glob("*.py")} & packages
