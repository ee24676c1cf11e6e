"""The ``build_warehouse`` flow: ``dbt build`` through prefect-dbt's runner, each dbt node a task with its logs."""

from __future__ import annotations

from prefect import flow
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

from flows.common import jobs_of_this_flow_run, settings
from xrh.dbt import DBT_PROFILES_DIR, DBT_PROJECT_DIR, build_warehouse, dbt_target_dir, run_dbt


def prefect_dbt_invoke():
    """prefect-dbt's runner over this project (it raises on a failing node, with the node named)."""
    runner = PrefectDbtRunner(
        settings=PrefectDbtSettings(
            project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROFILES_DIR, target_path=dbt_target_dir(settings())
        )
    )
    return runner.invoke


@flow(name="build_warehouse", log_prints=True)
def build_warehouse_flow(target: str = "sqlite") -> list[tuple[str, int]]:
    """Seeds, staging, intermediate models, marts and every data and unit test; ``target`` sqlite or duckdb.

    Returns the tests that warned (source values the warehouse nulled, mapped or excluded; see data_quality)."""
    with jobs_of_this_flow_run():
        warnings = build_warehouse(settings(), target, invoke=prefect_dbt_invoke())
    for name, rows in warnings:
        print(f"warning: {name}: {rows:,} row(s); see the data_quality mart")
    return warnings


def build_selected(selector: str) -> bool:
    """``dbt build --select`` one part (e.g. the leaderboard after an evaluation), each node a task."""
    return run_dbt(settings(), ["build", "--select", selector], invoke=prefect_dbt_invoke())
