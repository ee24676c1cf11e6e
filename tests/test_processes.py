"""Commands as separate processes: killed or terminated, they leave no worker behind and their run says so; run at the
same time as another writer, dbt waits for the lock instead of failing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import FILES
from xrh.warehouse import connect

POOL_SCRIPT = """
import sys, time
from xrh.processes import worker_pool
with worker_pool(2) as pool:
    futures = [pool.submit(time.sleep, 60) for _ in range(2)]
    print("ready", flush=True)
    futures[0].result()
"""


def _descendants(process: subprocess.Popen, at_least: int = 4, timeout: float = 60) -> list[psutil.Process]:
    """The process's descendants, once there are ``at_least`` of them (default: multiprocessing's resource tracker and
    fork server, and two workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(process.pid).children(recursive=True)
        if len(children) >= at_least:
            return children
        time.sleep(0.05)
    raise AssertionError(f"the command started fewer than {at_least} worker processes")


def _all_gone(processes: list[psutil.Process], timeout: float = 10) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


def test_pool_workers_exit_when_their_owner_is_killed():
    owner = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "ready"
    workers = _descendants(owner)
    owner.kill()
    owner.wait()
    assert _all_gone(workers), "workers outlived the process that owned them"


@pytest.fixture
def many_files(simulated, tmp_path) -> Path:
    """A folder of 3,000 DICOM files (hard links to the simulated ones): a walk that takes seconds."""
    root, _ = simulated
    sources = sorted((root / FILES / "mimic-cxr/2.1.0/files").rglob("*.dcm"))
    folder = tmp_path / "many"
    for index in range(3000):
        target = folder / f"{index // 100:03d}" / f"{index:05d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[index % len(sources)], target)
    return folder


def _environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XRH_DATA_ROOT": str(tmp_path), "XRH_WAREHOUSE": str(tmp_path / "w.sqlite")}


def _ingest(tmp_path: Path, folder: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "xrh.cli", "ingest", "dicom", str(folder), "--workers", "2"]
    return subprocess.Popen(command, env=_environment(tmp_path), stderr=subprocess.PIPE, text=True)


def _run_status(warehouse: Path) -> str:
    with connect(warehouse) as conn:
        return conn.execute("select status from runs where kind = 'ingest_dicom'").fetchone()[0]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_ingest_leaves_no_worker_and_its_run_is_interrupted(many_files, tmp_path, stop):
    command = _ingest(tmp_path, many_files)
    workers = _descendants(command)
    command.send_signal(stop)
    _, stderr = command.communicate(timeout=30)
    assert _all_gone(workers), "workers kept reading after the command was stopped"
    if stop == signal.SIGTERM:
        assert command.returncode == 143 and "Traceback" not in stderr
        assert _run_status(tmp_path / "w.sqlite") == "interrupted"
    else:
        assert _run_status(tmp_path / "w.sqlite") == "running"  # nobody could say otherwise, until someone looks:
        runs = subprocess.run(
            [sys.executable, "-m", "xrh.cli", "runs"], env=_environment(tmp_path), capture_output=True, text=True
        )
        assert "interrupted" in runs.stdout and _run_status(tmp_path / "w.sqlite") == "interrupted"
    rerun = subprocess.run(
        [sys.executable, "-m", "xrh.cli", "ingest", "dicom", str(many_files), "--workers", "2"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0 and "3,000 files scanned" in rerun.stdout


@pytest.fixture
def warehouse_copy(ingested, tmp_path) -> dict[str, str]:
    """The environment of a private copy of the ingested (unbuilt) warehouse."""
    copy = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(ingested.warehouse) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return {
        **os.environ,
        "XRH_DATA_ROOT": str(ingested.data_root),
        "XRH_WAREHOUSE": str(copy),
        "XRH_CACHE_DIR": str(tmp_path / "cache"),
    }


def _build(environment: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "xrh.cli", "build"]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_builds_at_once_both_succeed(warehouse_copy):
    first, second = _build(warehouse_copy), _build(warehouse_copy)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert not any("database is locked" in output for output in outputs)


HOLD_LOCK_SCRIPT = """
import sys, time
from xrh.warehouse import connect, write_transaction
with connect(sys.argv[1]) as conn, write_transaction(conn):
    conn.execute("create table if not exists lock_holder (x)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_build_waits_for_another_writer_instead_of_failing(warehouse_copy):
    # Another process holds the write lock longer than sqlite3's default 5 s timeout (as a large CSV load does).
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_SCRIPT, warehouse_copy["XRH_WAREHOUSE"], "8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    build = _build(warehouse_copy)
    output = build.communicate(timeout=300)[0]
    holder.wait(timeout=30)
    assert build.returncode == 0, output
