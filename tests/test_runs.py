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
