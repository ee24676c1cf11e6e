"""The tables the Python side writes: one declaration each, and one writer.

Each package declares its tables in a ``tables.yaml`` beside its code (``runs`` here, ``raw_load_*`` and ``raw_dicom_*``
in ``ingest``, ``ml_*`` in ``models_ml``, ``harm_*`` in ``harmonize``), registered under the ``xrh.tables`` entry-point
group as the commands are, so this floor knows none of them by name:

```yaml
source: results        # the dbt source the tables belong to: raw (ingest) or results (jobs)
tables:
  ml_runs:
    description: One row per training run.
    primary_key: [run_id]
    columns:
      - {name: run_id, type: text, required: true, description: The run (runs.run_id).}
```

Tables are created from their declaration (``STRICT``, the declared key, ``NOT NULL`` for required columns); dbt's
sources for them are generated from the same declarations (:func:`dbt_sources_yaml`, checked by a test), so every
table is documented in the dbt docs site. :func:`replace_rows` is the one way rows are written: it replaces the rows of
one run (or any key) by column name, inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from xrh.warehouse import quote, table_columns, write_transaction

ENTRY_POINT_GROUP = "xrh.tables"
# Declared type -> SQLite STRICT column type (and the data_type dbt's docs show).
COLUMN_TYPES = {"text": "TEXT", "integer": "INTEGER", "real": "REAL", "blob": "BLOB"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool
    description: str
    check: str | None = None  # an SQL condition on the column, e.g. "split in ('train', 'test')"

    def sql(self) -> str:
        check = f" check ({self.check})" if self.check else ""
        return f"{quote(self.name)} {COLUMN_TYPES[self.type]}{' not null' if self.required else ''}{check}"


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    source: str = "results"  # the dbt source: "raw" (written by ingest) or "results" (written by jobs)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def create_sql(self, name: str | None = None) -> str:
        parts = [column.sql() for column in self.columns]
        if self.primary_key:
            parts.append(f"primary key ({', '.join(quote(key) for key in self.primary_key)})")
        return f"create table if not exists {quote(name or self.name)} (" + ", ".join(parts) + ") strict"


def load_tables(path: Path) -> dict[str, Table]:
    """The tables declared in one YAML file.

    Raises
    ------
    ValueError
        A missing field, an unknown type, or a key that is not a column; the message names the file and the table.
    """
    declared = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    tables = {}
    for name, body in (declared.get("tables") or {}).items():
        where = f"{path}: table {name}"
        try:
            columns = tuple(
                Column(
                    name=str(column["name"]),
                    type=str(column["type"]),
                    required=bool(column.get("required", False)),
                    description=str(column["description"]),
                    check=column.get("check"),
                )
                for column in body["columns"]
            )
            key = tuple(body.get("primary_key", ()))
            table = Table(name, str(body["description"]), columns, key, str(declared.get("source", "results")))
        except KeyError as error:
            raise ValueError(f"{where}: missing field {error.args[0]!r}") from error
        unknown = {c.type for c in columns} - set(COLUMN_TYPES)
        if unknown:
            raise ValueError(f"{where}: unknown column types {sorted(unknown)}; known: {sorted(COLUMN_TYPES)}")
        if set(table.primary_key) - set(table.column_names):
            raise ValueError(f"{where}: primary key columns are not all columns")
        tables[name] = table
    return tables


@cache
def declared_tables() -> dict[str, Table]:
    """Every table the installed packages declare (entry-point group ``xrh.tables``), by name."""
    tables: dict[str, Table] = {}
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        for table in entry_point.load().values():
            tables[table.name] = table
    return tables


def ensure_table(conn: sqlite3.Connection, table: Table) -> None:
    """Create ``table`` from its declaration if it does not exist; add declared columns an older table lacks."""
    conn.execute(table.create_sql())
    present = set(table_columns(conn, table.name))
    for column in table.columns:
        if column.name not in present:  # a column declared after the table was made: NULL for the old rows
            conn.execute(f"alter table {quote(table.name)} add column {replace(column, required=False).sql()}")


def ensure_result_tables(conn: sqlite3.Connection) -> None:
    """Create every declared result table that does not exist yet, so the marts over them build before any job ran."""
    with write_transaction(conn):
        for table in declared_tables().values():
            if table.source == "results":
                ensure_table(conn, table)


def replace_rows(
    conn: sqlite3.Connection,
    rows_by_table: Mapping[Table, Iterable[Mapping[str, object]]],
    *,
    where: Mapping[str, object],
) -> None:
    """Replace the rows matching ``where`` (e.g. ``{"run_id": run}``) in each table with its new rows, all at once.

    Rows are mappings by column name (a column left out is NULL). Tables are created from their declaration if needed,
    and every delete and insert is one ``BEGIN IMMEDIATE`` transaction: a reader sees all the old rows or all the new
    ones, a crash leaves the old ones.

    Raises
    ------
    ValueError
        A row or ``where`` names a column its table does not declare (nothing is written).
    """
    batches = []
    for table, rows in rows_by_table.items():
        names = table.column_names
        rows = list(rows)
        unknown = set(where).union(*(row.keys() for row in rows)) - set(names)
        if unknown:
            raise ValueError(f"{table.name} has no columns {sorted(unknown)}; declared: {names}")
        batches.append((table, [tuple(row.get(name) for name in names) for row in rows]))
    condition = " and ".join(f"{quote(column)} = ?" for column in where) or "1"
    with write_transaction(conn):
        for table, values in batches:
            ensure_table(conn, table)
            conn.execute(f"delete from {quote(table.name)} where {condition}", tuple(where.values()))
            columns = ", ".join(map(quote, table.column_names))
            marks = ", ".join("?" * len(table.columns))
            conn.executemany(f"insert into {quote(table.name)} ({columns}) values ({marks})", values)


def replace_run_rows(
    conn: sqlite3.Connection, rows_by_table: Mapping[Table, Iterable[Mapping[str, object]]], run_id: str
) -> None:
    """:func:`replace_rows` for the common case: every row belongs to ``run_id`` (its ``run_id`` column is set here)."""
    stamped = {table: [{**row, "run_id": run_id} for row in rows] for table, rows in rows_by_table.items()}
    replace_rows(conn, stamped, where={"run_id": run_id})


SOURCE_DESCRIPTIONS = {
    "raw": "Raw tables written by `xrh ingest`: the source files as typed rows, never edited by hand.",
    "results": "Tables written by the Python jobs (xrh, models_ml, harmonize); every row carries its run_id.",
}
DBT_SOURCES_HEADER = (
    "# Generated from the table declarations (xrh.tables) by `xrh tables --write-dbt-sources`; do not edit by hand:\n"
    "# change a tables.yaml (or ingest/raw_tables.yaml) and generate it again. A test checks that it is current.\n"
)


def dbt_sources_yaml() -> str:
    """The dbt sources file for every declared table: each table and column with its description and type."""
    sources = []
    for source, description in SOURCE_DESCRIPTIONS.items():
        tables = sorted((t for t in declared_tables().values() if t.source == source), key=lambda t: t.name)
        sources.append(
            {
                "name": source,
                "description": description,
                "schema": "main",
                "tables": [
                    {
                        "name": table.name,
                        "description": table.description,
                        "columns": [
                            {"name": c.name, "description": c.description, "data_type": COLUMN_TYPES[c.type].lower()}
                            for c in table.columns
                        ],
                    }
                    for table in tables
                ],
            }
        )
    body = yaml.safe_dump({"version": 2, "sources": sources}, sort_keys=False, width=120, allow_unicode=True)
    return DBT_SOURCES_HEADER + body
