"""Running the dbt project against the warehouse named by the settings.

The dbt project ships inside the package (``xrh/dbt_project``, its ``profiles.yml`` beside ``dbt_project.yml``), so an
installed ``xrh`` builds from any folder. dbt reads the profile through environment variables; this module sets them
from the settings with absolute paths, and puts dbt's artifacts and logs under the data root's cache, not into the
package (which may be read-only, and is shared by every data root).

dbt-sqlite opens its own ``sqlite3`` connection: a 5 s lock timeout and deferred transactions, so a build that meets
another writer (a second build, an ingest) fails with "database is locked". :func:`wait_like_the_project_writers`
gives its connections the project's busy timeout and makes its transactions ``BEGIN IMMEDIATE`` (a deferred
transaction that read before another connection committed cannot wait for the lock at all); every dbt run through this
module gets it, so concurrent builds and ingests serialize instead of failing. dbt also writes its artifacts (manifest,
partial parse, compiled SQL) into its target folder, which two runs at once would corrupt: runs through this module
take turns on a lock file there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xrh.runs import recorded_run
from xrh.settings import Settings
from xrh.tables import ensure_result_tables
from xrh.warehouse import BUSY_TIMEOUT_MS, connect

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(__file__).resolve().parent / "dbt_project"
DBT_PROFILES_DIR = DBT_PROJECT_DIR
# Generated from the table declarations (xrh.tables.dbt_sources_yaml; `xrh tables --write-dbt-sources`).
SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "__sources.yml"


def duckdb_extension_directory(cache_dir: Path) -> Path:
    """An extension folder holding DuckDB's SQLite scanner, taken from the pinned ``duckdb-extension-sqlite`` wheel.

    DuckDB would download the extension on first use, which this project cannot rely on (offline machines); the wheel
    ships it under another file name, so it is copied where DuckDB looks for it.
    """
    import duckdb
    import duckdb_extension_sqlite

    version = f"v{duckdb.__version__}"
    platform = duckdb.execute("pragma platform").fetchone()[0]
    folder = (cache_dir / "duckdb_extensions").resolve()
    target = folder / version / platform / "sqlite_scanner.duckdb_extension"
    if not target.exists():
        shipped = Path(duckdb_extension_sqlite.__file__).parent / "extensions" / version / "sqlite.duckdb_extension"
        if not shipped.exists():
            raise FileNotFoundError(f"duckdb-extension-sqlite has no build for DuckDB {version} ({shipped})")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped, target)
    return folder


def dbt_target_dir(settings: Settings) -> Path:
    """Where dbt writes its artifacts (manifest, compiled SQL, run results) for this data root."""
    return (settings.cache_dir / "dbt_target").resolve()


def dbt_environment(settings: Settings, target: str = "sqlite") -> dict[str, str]:
    """The variables ``profiles.yml`` reads, for this warehouse, and dbt's own for its artifacts and logs."""
    schema_dir = (settings.cache_dir / "dbt_schemas").resolve()
    schema_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        "DBT_TARGET_PATH": str(dbt_target_dir(settings)),
        "DBT_LOG_PATH": str((settings.cache_dir / "dbt_logs").resolve()),
        "XRH_WAREHOUSE": str(settings.warehouse.resolve()),
        "XRH_DBT_SCHEMA_DIR": str(schema_dir),
        "XRH_DBT_TARGET": target,
        "DBT_PROFILES_DIR": str(DBT_PROFILES_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    if target == "duckdb":  # only that target reads it, and preparing it imports duckdb
        environment["XRH_DUCKDB_EXTENSION_DIR"] = str(duckdb_extension_directory(settings.cache_dir))
    return environment


def wait_like_the_project_writers() -> None:
    """Make dbt-sqlite's connections wait for the write lock as :func:`xrh.warehouse.connect`'s do (idempotent)."""
    from dbt.adapters.sqlite.connections import SQLiteConnectionManager

    if getattr(SQLiteConnectionManager, "_xrh_waits", False):
        return
    adapter_open = SQLiteConnectionManager.open.__func__

    def open_waiting(cls, connection):
        connection = adapter_open(cls, connection)
        if connection.handle is not None:
            connection.handle.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        return connection

    def begin_immediate(self) -> None:
        self.add_query("BEGIN IMMEDIATE", auto_begin=False)

    SQLiteConnectionManager.open = classmethod(open_waiting)
    SQLiteConnectionManager.add_begin_query = begin_immediate
    SQLiteConnectionManager._xrh_waits = True


@contextmanager
def one_dbt_run_at_a_time(settings: Settings) -> Iterator[None]:
    """Hold the target folder's lock file (``.xrh-lock``) for the block; wait, saying so, while another holds it."""
    path = dbt_target_dir(settings) / ".xrh-lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another dbt run of this project is in progress; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


def _invoke(settings: Settings, args: list[str], target: str, invoke: Callable[[list[str]], Any] | None) -> Any:
    from dbt.cli.main import dbtRunner

    os.environ.update(dbt_environment(settings, target))
    with connect(settings.warehouse) as conn:  # marts over job results build before any job has run
        ensure_result_tables(conn)
    if target == "sqlite":
        wait_like_the_project_writers()
    invoke = invoke or dbtRunner().invoke
    with one_dbt_run_at_a_time(settings):
        result = invoke([*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROFILES_DIR)])
    if result.exception is not None:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception}") from result.exception
    return result


def run_dbt(
    settings: Settings, args: list[str], target: str = "sqlite", *, invoke: Callable[[list[str]], Any] | None = None
) -> bool:
    """Run ``dbt <args>`` in this process; True when every node succeeded (warnings are success).

    ``invoke`` runs the argument list (default: dbt's own ``dbtRunner().invoke``; the flows pass prefect-dbt's runner,
    which shows each dbt node as a task) and returns dbt's result.
    """
    return bool(_invoke(settings, args, target, invoke).success)


def warned_tests(result: Any) -> list[tuple[str, int]]:
    """``(test name, failing rows)`` of every test that warned in a dbt result (source-value checks warn, keys fail)."""
    nodes = getattr(getattr(result, "result", None), "results", None) or []
    return sorted((node.node.name, int(node.failures or 0)) for node in nodes if str(node.status) == "warn")


def build_warehouse(
    settings: Settings, target: str = "sqlite", *, invoke: Callable[[list[str]], Any] | None = None
) -> list[tuple[str, int]]:
    """``dbt build`` (seeds, models, data and unit tests) as a recorded run; return the tests that warned.

    Raises unless every model and every error-severity test passed.
    """
    with connect(settings.warehouse) as conn, recorded_run(conn, "build_warehouse", {"target": target}):
        result = _invoke(settings, ["build", "--target", target], target, invoke)
        if not result.success:
            raise RuntimeError("dbt build failed: see the log above for the failing models and tests")
        return warned_tests(result)
