import pytest

from xrh.runs import orchestrated_by, recorded_run, run_id_for
from xrh.warehouse import connect


def test_run_ids_depend_on_kind_parameters_and_version():
    assert run_id_for("train", {"a": 1, "b": 2}, "v1") == run_id_for("train", {"b": 2, "a": 1}, "v1")
    assert run_id_for("train", {"a": 1}, "v1") != run_id_for("train", {"a": 2}, "v1")
    assert run_id_for("train", {"a": 1}, "v1") != run_id_for("train", {"a": 1}, "v2")
    assert run_id_for("train", {"a": 1}, "v1").startswith("train-")


def test_failed_then_repeated_run_is_one_row_with_two_attempts(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        with pytest.raises(ValueError), recorded_run(conn, "ingest", {"folder": "x"}) as run:
            raise ValueError("bad header in a.csv")
        status, error = conn.execute("select status, error from runs where run_id = ?", (run.run_id,)).fetchone()
        assert status == "failed" and "bad header in a.csv" in error
        with orchestrated_by("abc"), recorded_run(conn, "ingest", {"folder": "x"}) as again:
            assert again.run_id == run.run_id
        row = conn.execute("select status, attempts, error, ended_at, prefect_flow_run_id from runs").fetchall()
        assert len(row) == 1
        status, attempts, error, ended_at, flow_run = row[0]
        assert (status, attempts, error, flow_run) == ("succeeded", 2, None, "abc")
        assert ended_at is not None


def test_an_interrupted_run_says_so_and_a_vanished_process_is_found(tmp_path):
    import subprocess
    import sys

    from xrh.runs import mark_interrupted_runs

    with connect(tmp_path / "w.sqlite") as conn:
        with pytest.raises(KeyboardInterrupt), recorded_run(conn, "ingest", {"folder": "x"}):
            raise KeyboardInterrupt
        assert conn.execute("select status from runs").fetchone()[0] == "interrupted"
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        with recorded_run(conn, "ingest", {"folder": "y"}) as run:
            conn.execute("update runs set pid = ? where run_id = ?", (int(gone.stdout), run.run_id))
            assert mark_interrupted_runs(conn) == 1
            status, error = conn.execute("select status, error from runs where run_id = ?", (run.run_id,)).fetchone()
    assert status == "interrupted" and "ended without finishing" in error


def test_a_runs_table_from_an_older_release_keeps_its_rows(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        conn.execute(
            "create table runs (run_id text primary key, kind text not null, parameters text not null,"
            " code_version text not null, started_at text not null, ended_at text, status text not null"
            " check (status in ('running', 'succeeded', 'failed')), attempts integer not null default 1,"
            " prefect_flow_run_id text, error text) strict"
        )
        conn.execute(
            "insert into runs values ('old-1', 'train', '{}', 'v0', '2026-01-01 00:00:00', null,"
            " 'succeeded', 1, null, null)"
        )
        with recorded_run(conn, "ingest", {"folder": "x"}):
            pass
        rows = dict(conn.execute("select run_id, status from runs"))
    assert rows["old-1"] == "succeeded" and len(rows) == 2
