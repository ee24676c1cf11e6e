"""Running the dbt project against the warehouse named by the settings.

dbt reads its profile (``profiles.yml`` at the repository root) through environment variables; this module sets them
from the settings with absolute paths, so dbt runs from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from xrh.settings import Settings

REPOSITORY = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPOSITORY / "dbt_project"
DBT_PROFILES_DIR = REPOSITORY


def dbt_environment(settings: Settings, target: str = "sqlite") -> dict[str, str]:
    """The variables ``profiles.yml`` reads, for this warehouse."""
    schema_dir = (settings.cache_dir / "dbt_schemas").resolve()
    schema_dir.mkdir(parents=True, exist_ok=True)
    return {
        "XRH_WAREHOUSE": str(settings.warehouse.resolve()),
        "XRH_DBT_SCHEMA_DIR": str(schema_dir),
        "XRH_DBT_TARGET": target,
        "DBT_PROFILES_DIR": str(DBT_PROFILES_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(settings: Settings, args: list[str], target: str = "sqlite") -> bool:
    """Run ``dbt <args>`` in this process; True when every node succeeded."""
    from dbt.cli.main import dbtRunner

    os.environ.update(dbt_environment(settings, target))
    result = dbtRunner().invoke([*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROFILES_DIR)])
    if result.exception is not None:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception}") from result.exception
    return bool(result.success)
