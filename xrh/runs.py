"""The run registry: one row per job run in the ``runs`` table.

A run's id is derived from its kind, its parameters and the code version, so the same job with the same inputs is the
same run: re-running it after a crash resumes that run (and overwrites its rows with the same rows) instead of adding a
second copy. ``attempts`` counts how often it was started.

An orchestrator (the Prefect flows) wraps its work in :func:`orchestrated_by`, so every run started inside records the
orchestrator's run id without each job passing it along, and the orchestrator hears each run id (the flows name their
flow run after it).

A run records the process that runs it (host, pid and the process's start time). A run interrupted by Ctrl-C or SIGTERM
ends ``interrupted``; one whose process vanished without a word (SIGKILL, a crash, a power cut) is found by
:func:`mark_interrupted_runs`, which every new run and ``xrh runs`` call first, and marked ``interrupted`` too.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from xrh.processes import Terminated, process_alive, process_started_at
from xrh.tables import load_tables
from xrh.warehouse import quote, swap_in, table_columns, table_exists, timestamp_now, write_transaction

TABLES = load_tables(Path(__file__).with_name("tables.yaml"))
RUNS = TABLES["runs"]
# Stopping a command (Ctrl-C, SIGTERM, the interpreter exiting) is an interruption, not a failure of the job.
INTERRUPTIONS = (KeyboardInterrupt, Terminated, SystemExit)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, plus the git commit (and ``-dirty``) when running from a checkout."""
    try:
        version = metadata.version("xrh")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    checkout = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f"{version}+g{commit}{'.dirty' if dirty else ''}"


def canonical_json(parameters: Mapping[str, object]) -> str:
    """Parameters as JSON with sorted keys, so equal parameters give equal text."""
    return json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)


def run_id_for(kind: str, parameters: Mapping[str, object], version: str | None = None) -> str:
    """``<kind>-<12 hex>``: a hash of kind, parameters and code version."""
    digest = hashlib.sha256(f"{kind}\n{canonical_json(parameters)}\n{version or code_version()}".encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


@dataclass(frozen=True)
class _Orchestrator:
    flow_run_id: str | None
    on_run: Callable[[str], None] | None


_orchestrator: ContextVar[_Orchestrator | None] = ContextVar("orchestrator", default=None)


@contextmanager
def orchestrated_by(flow_run_id: str | None, on_run: Callable[[str], None] | None = None) -> Iterator[None]:
    """Runs recorded inside this block carry ``flow_run_id`` in ``runs.prefect_flow_run_id``; ``on_run`` is called
    with each one's run id as it starts."""
    token = _orchestrator.set(_Orchestrator(flow_run_id, on_run))
    try:
        yield
    finally:
        _orchestrator.reset(token)


@dataclass(frozen=True)
class Run:
    run_id: str
    kind: str
    parameters: Mapping[str, object]


def ensure_runs_table(conn: sqlite3.Connection) -> None:
    """Create ``runs``; a table from before the ``interrupted`` status and process columns is rebuilt with its rows."""
    with write_transaction(conn):
        conn.execute(RUNS.create_sql())
        (sql,) = conn.execute("select sql from sqlite_master where name = 'runs'").fetchone()
    if "'interrupted'" in sql:
        return
    old = ", ".join(quote(name) for name in table_columns(conn, "runs"))
    with write_transaction(conn):
        conn.execute("drop table if exists runs__xrh_new")
        conn.execute(RUNS.create_sql("runs__xrh_new"))
        conn.execute(f"insert into runs__xrh_new ({old}) select {old} from runs")
    swap_in(conn, "runs__xrh_new", "runs")


def mark_interrupted_runs(conn: sqlite3.Connection) -> int:
    """Mark ``interrupted`` every ``running`` run of this host whose process is gone; return how many."""
    host = socket.gethostname()
    running = conn.execute(
        "select run_id, pid, process_started_at from runs where status = 'running' and host = ?", (host,)
    ).fetchall()
    gone = [(run_id, pid) for run_id, pid, started in running if not process_alive(pid, started)]
    if gone:
        with write_transaction(conn):
            conn.executemany(
                "update runs set status = 'interrupted', ended_at = ?, error = ?"
                " where run_id = ? and status = 'running'",
                [
                    (timestamp_now(), f"process {pid} on {host} ended without finishing the run", run_id)
                    for run_id, pid in gone
                ],
            )
    return len(gone)


@contextmanager
def recorded_run(
    conn: sqlite3.Connection,
    kind: str,
    parameters: Mapping[str, object],
) -> Iterator[Run]:
    """Register a run as ``running``, yield it, then mark it ``succeeded`` or ``failed`` (with the error's last line).

    Re-entering with the same kind, parameters and code version reuses the run id and counts another attempt.
    Inside :func:`orchestrated_by`, the run records the orchestrator's flow-run id and tells the orchestrator its id.
    """
    orchestrator = _orchestrator.get() or _Orchestrator(None, None)
    ensure_runs_table(conn)
    mark_interrupted_runs(conn)
    version = code_version()
    run = Run(run_id_for(kind, parameters, version), kind, dict(parameters))
    pid = os.getpid()
    with write_transaction(conn):
        conn.execute(
            """
            insert into runs (
                run_id, kind, parameters, code_version, started_at, status, attempts, prefect_flow_run_id,
                host, pid, process_started_at
            )
            values (?, ?, ?, ?, ?, 'running', 1, ?, ?, ?, ?)
            on conflict (run_id) do update set
                started_at = excluded.started_at, ended_at = null, status = 'running', error = null,
                attempts = runs.attempts + 1, prefect_flow_run_id = excluded.prefect_flow_run_id,
                host = excluded.host, pid = excluded.pid, process_started_at = excluded.process_started_at
            """,
            (
                run.run_id,
                kind,
                canonical_json(parameters),
                version,
                timestamp_now(),
                orchestrator.flow_run_id,
                socket.gethostname(),
                pid,
                process_started_at(pid),
            ),
        )
    if orchestrator.on_run is not None:
        orchestrator.on_run(run.run_id)
    try:
        yield run
    except BaseException as error:
        message = traceback.format_exception_only(type(error), error)[-1].strip()
        status = "interrupted" if isinstance(error, INTERRUPTIONS) else "failed"
        with write_transaction(conn):
            conn.execute(
                "update runs set status = ?, ended_at = ?, error = ? where run_id = ?",
                (status, timestamp_now(), message, run.run_id),
            )
        raise
    with write_transaction(conn):
        conn.execute(
            "update runs set status = 'succeeded', ended_at = ? where run_id = ?", (timestamp_now(), run.run_id)
        )


def latest_succeeded_run(
    conn: sqlite3.Connection, kind: str, parameters: Mapping[str, object] | None = None
) -> str | None:
    """The run id of the most recently finished successful run of ``kind`` whose parameters include ``parameters``
    (each key with an equal value, matched in the stored JSON), or None.

    This is how a job finds the run it builds on: by what that run is, whatever code version made it (a run id is a
    hash that includes the code version, so recomputing it after any edit finds nothing).
    """
    if not table_exists(conn, "runs"):
        return None
    wanted = dict(parameters or {})
    conditions = "".join(" and json_extract(parameters, ?) is ?" for _ in wanted)
    bound = [value for key, value in wanted.items() for value in (f"$.{key}", value)]
    row = conn.execute(
        f"select run_id from runs where kind = ? and status = 'succeeded'{conditions}"
        " order by ended_at desc, rowid desc limit 1",
        (kind, *bound),
    ).fetchone()
    return row[0] if row else None
