import sqlite3
import threading

import pandas as pd
import pytest

from xrh.warehouse import connect, replace_table, table_counts, write_transaction


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


def test_replace_table_from_frame_and_rows(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        frame = pd.DataFrame({"dicom_id": ["a", "b"], "kvp": [90.0, None], "rows": [10, 20]})
        assert replace_table(conn, "acq", frame, primary_key=["dicom_id"]) == 2
        assert conn.execute("select kvp from acq order by dicom_id").fetchall() == [(90.0,), (None,)]
        replace_table(
            conn, "acq", [("c", 1.0, 3)], columns=[("dicom_id", "TEXT"), ("kvp", "REAL"), ("rows", "INTEGER")]
        )
        assert conn.execute("select dicom_id from acq").fetchall() == [("c",)]


def test_failed_replace_leaves_the_old_table(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        replace_table(conn, "t", [(1,)], columns=[("x", "INTEGER")], strict=True)
        with pytest.raises(sqlite3.Error):
            replace_table(conn, "t", [(2,), ("not a number",)], columns=[("x", "INTEGER")], strict=True)
        assert conn.execute("select x from t").fetchall() == [(1,)]
        # The stale staging table of the failed attempt is not left behind after the next success.
        replace_table(conn, "t", [(3,)], columns=[("x", "INTEGER")])
        assert [name for name, _, _ in table_counts(conn)] == ["t"]


def test_views_over_a_replaced_table_keep_working(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        replace_table(conn, "t", [(1,)], columns=[("x", "INTEGER")])
        conn.execute("create view v as select x * 2 as y from t")
        replace_table(conn, "t", [(5,)], columns=[("x", "INTEGER")])
        assert conn.execute("select y from v").fetchall() == [(10,)]


def test_concurrent_reader_never_sees_a_missing_or_partial_table(tmp_path):
    path = tmp_path / "w.sqlite"
    rows = [(i,) for i in range(2000)]
    with connect(path) as conn:
        replace_table(conn, "t", rows, columns=[("x", "INTEGER")])
    errors, counts = [], set()
    stop = threading.Event()

    def poll():
        with connect(path, readonly=True) as reader:
            while not stop.is_set():
                try:
                    counts.add(reader.execute("select count(*) from t").fetchone()[0])
                except sqlite3.Error as error:  # "no such table" would land here
                    errors.append(str(error))

    thread = threading.Thread(target=poll)
    thread.start()
    with connect(path) as conn:
        for _ in range(30):
            replace_table(conn, "t", rows, columns=[("x", "INTEGER")])
    stop.set()
    thread.join()
    assert errors == []
    assert counts == {2000}
