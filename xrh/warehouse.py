"""A small, explicit API over the standard ``sqlite3`` driver for the one warehouse file.

Transactions are visible in the calling code:

- :func:`connect` opens a connection in autocommit mode (``isolation_level=None``): nothing is wrapped in an implicit
  transaction, so every write happens inside a :func:`write_transaction` block or commits on its own.
- :func:`write_transaction` is ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception). It takes the write
  lock up front, so a read-then-write cannot fail half-way because another connection committed in between.
- :func:`swap_in` renames a table built aside into place within one short transaction: a reader in another connection
  sees the old table or the new one, never none and never a half-written one. Rows of the declared tables are written
  by :func:`xrh.tables.replace_rows`.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

BUSY_TIMEOUT_MS = 60_000


class Connection(sqlite3.Connection):
    """A connection that closes at the end of a ``with`` block (the standard one only ends a transaction there)."""

    def __exit__(self, *exc_info: object) -> bool:
        self.close()
        return False


def connect(path: str | Path, *, readonly: bool = False) -> Connection:
    """Open the warehouse with WAL journaling, a busy timeout and foreign keys enforced.

    The parent folder is created when missing (unless ``readonly``). The connection is in autocommit mode; use
    :func:`write_transaction` for writes that belong together. ``with connect(...) as conn:`` closes it afterwards.
    """
    path = Path(path)
    options = {"isolation_level": None, "timeout": BUSY_TIMEOUT_MS / 1000, "factory": Connection}
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"warehouse {path} does not exist; run `xrh ingest` first")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, **options)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, **options)
        conn.execute("pragma journal_mode = wal")
        conn.execute("pragma synchronous = normal")
    conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("pragma foreign_keys = on")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` on entry, ``COMMIT`` on normal exit, ``ROLLBACK`` if the block raises."""
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def quote(identifier: str) -> str:
    """Quote an SQL identifier (table or column name)."""
    return '"' + identifier.replace('"', '""') + '"'


def table_exists(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute("select 1 from sqlite_master where type in ('table', 'view') and name = ?", (table,)).fetchone()
    return row is not None


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"pragma table_info({quote(table)})")]


def swap_in(conn: sqlite3.Connection, staging: str, table: str) -> None:
    """Drop ``table`` (table or view) and rename ``staging`` to it, in one transaction.

    ``legacy_alter_table`` keeps SQLite from re-validating every view during the rename: views that read ``table`` are
    briefly dangling inside the transaction, which a modern rename would refuse.
    """
    conn.execute("pragma legacy_alter_table = on")
    try:
        with write_transaction(conn):
            kind = conn.execute("select type from sqlite_master where name = ?", (table,)).fetchone()
            if kind is not None:
                conn.execute(f"drop {kind[0]} {quote(table)}")
            conn.execute(f"alter table {quote(staging)} rename to {quote(table)}")
    finally:
        conn.execute("pragma legacy_alter_table = off")


def table_counts(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """``(name, type, row count)`` for every table and view, sorted by name."""
    objects = conn.execute(
        "select name, type from sqlite_master"
        " where type in ('table', 'view') and name not like 'sqlite_%' order by name"
    ).fetchall()
    return [(name, kind, conn.execute(f"select count(*) from {quote(name)}").fetchone()[0]) for name, kind in objects]


def warehouse_id(conn: sqlite3.Connection) -> str:
    """A random id given to this warehouse file when first asked for: a rebuilt warehouse gets a new one, so caches
    keyed on it (the flows' task caches) never reuse results that were written into another file."""
    with write_transaction(conn):
        conn.execute("create table if not exists warehouse_meta (key text primary key, value text not null) strict")
        conn.execute(
            "insert into warehouse_meta values ('warehouse_id', ?) on conflict (key) do nothing", (uuid.uuid4().hex,)
        )
    return conn.execute("select value from warehouse_meta where key = 'warehouse_id'").fetchone()[0]


def timestamp_now() -> str:
    """The current UTC time as the warehouse stores times (``YYYY-MM-DD HH:MM:SS``)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
