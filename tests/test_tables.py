"""The table declarations and the one writer: tables created from their declaration, rows replaced by column name in
one transaction, the dbt sources generated from the declarations and current."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from xrh.dbt import SOURCES_FILE
from xrh.tables import dbt_sources_yaml, declared_tables, load_tables, replace_rows, replace_run_rows
from xrh.warehouse import connect, swap_in, write_transaction

DECLARATION = """
tables:
  results_demo:
    description: A demo table.
    primary_key: [run_id, item]
    columns:
      - {name: run_id, type: text, required: true, description: The run.}
      - {name: item, type: integer, required: true, description: An item.}
      - {name: value, type: real, description: A value.}
"""


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text(DECLARATION)
    return load_tables(path)["results_demo"]


def test_rows_of_one_run_are_replaced_by_column_name(tmp_path, demo):
    with connect(tmp_path / "w.sqlite") as conn:
        replace_run_rows(conn, {demo: [{"item": 1, "value": 0.5}, {"item": 2}]}, "a")
        replace_run_rows(conn, {demo: [{"item": 1, "value": 1.5}]}, "b")
        replace_run_rows(conn, {demo: [{"value": 2.5, "item": 3}]}, "a")  # any order of keys; a's old rows go
        rows = conn.execute("select run_id, item, value from results_demo order by run_id, item").fetchall()
    assert rows == [("a", 3, 2.5), ("b", 1, 1.5)]


def test_unknown_columns_and_wrong_types_write_nothing(tmp_path, demo):
    with connect(tmp_path / "w.sqlite") as conn:
        replace_run_rows(conn, {demo: [{"item": 1}]}, "a")
        with pytest.raises(ValueError, match=r"results_demo has no columns \['colour'\]"):
            replace_run_rows(conn, {demo: [{"item": 2, "colour": "red"}]}, "a")
        with pytest.raises(sqlite3.Error):  # STRICT: a text in an integer column fails the whole transaction
            replace_run_rows(conn, {demo: [{"item": 2}, {"item": "two"}]}, "a")
        assert conn.execute("select run_id, item from results_demo").fetchall() == [("a", 1)]


def test_a_declared_column_added_later_reaches_an_older_table(tmp_path, demo):
    with connect(tmp_path / "w.sqlite") as conn:
        conn.execute("create table results_demo (run_id text not null, item integer not null) strict")
        conn.execute("insert into results_demo values ('old', 1)")
        replace_run_rows(conn, {demo: [{"item": 1, "value": 9.0}]}, "new")
        rows = conn.execute("select run_id, value from results_demo order by run_id").fetchall()
    assert rows == [("new", 9.0), ("old", None)]


def test_a_reader_never_sees_the_rows_half_replaced(tmp_path, demo):
    path = tmp_path / "w.sqlite"
    rows = [{"item": i, "value": float(i)} for i in range(2000)]
    with connect(path) as conn:
        replace_run_rows(conn, {demo: rows}, "a")
    seen, stop = set(), threading.Event()

    def poll():
        with connect(path, readonly=True) as reader:
            while not stop.is_set():
                seen.add(reader.execute("select count(*) from results_demo where run_id = 'a'").fetchone()[0])

    thread = threading.Thread(target=poll)
    thread.start()
    with connect(path) as conn:
        for _ in range(30):
            replace_rows(conn, {demo: [{**row, "run_id": "a"} for row in rows]}, where={"run_id": "a"})
    stop.set()
    thread.join()
    assert seen == {2000}


def test_swapping_a_table_in_keeps_the_views_over_it(tmp_path):
    with connect(tmp_path / "w.sqlite") as conn:
        conn.execute("create table t (x integer)")
        conn.execute("insert into t values (1)")
        conn.execute("create view v as select x * 2 as y from t")
        with write_transaction(conn):
            conn.execute("create table t_new (x integer)")
            conn.execute("insert into t_new values (5)")
        swap_in(conn, "t_new", "t")
        assert conn.execute("select y from v").fetchall() == [(10,)]


def test_declarations_name_what_is_wrong(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text("tables:\n  t:\n    description: d\n    columns:\n      - {name: a, type: varchar, description: x}")
    with pytest.raises(ValueError, match=r"table t: unknown column types \['varchar'\]"):
        load_tables(path)
    path.write_text("tables:\n  t:\n    columns: []\n")
    with pytest.raises(ValueError, match="table t: missing field 'description'"):
        load_tables(path)


def test_every_table_the_python_side_wrote_is_declared(built):
    """Every raw_*, ml_* and harm_* table in a warehouse after ingest and build (and any jobs the session ran), and the
    run registry, is declared, with exactly the columns the warehouse holds: a table written outside the
    declarations, or a declaration that drifted from what is written, fails here."""
    from xrh.warehouse import table_columns

    tables = declared_tables()
    with connect(built.warehouse, readonly=True) as conn:
        written = [
            name
            for (name,) in conn.execute("select name from sqlite_master where type = 'table'")
            if name.startswith(("raw_", "ml_", "harm_")) or name in ("runs", "artifacts")
        ]
        assert "raw_dicom_headers" in written and "runs" in written
        for name in written:
            assert name in tables, f"{name} is written but not declared"
            assert table_columns(conn, name) == tables[name].column_names, name


def test_the_dbt_sources_file_is_generated_from_the_declarations():
    assert Path(SOURCES_FILE).read_text(encoding="utf-8") == dbt_sources_yaml(), (
        "xrh/dbt_project/models/staging/__sources.yml is out of date: run `xrh tables --write-dbt-sources`"
    )
