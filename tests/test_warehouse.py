import pytest

from xrh.warehouse import connect, write_transaction


def test_connection_pragmas(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("pragma foreign_keys").fetchone()[0] == 1
        assert conn.execute("pragma busy_timeout").fetchone()[0] > 0


def test_readonly_connection_of_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        connect(tmp_path / "missing.sqlite", readonly=True)


def test_write_transaction_rolls_back_on_error(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        conn.execute("create table t (x integer)")
        with pytest.raises(RuntimeError), write_transaction(conn):
            conn.execute("insert into t values (1)")
            raise RuntimeError("boom")
        assert conn.execute("select count(*) from t").fetchone()[0] == 0
