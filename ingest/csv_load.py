"""Stream the PhysioNet CSVs into typed raw tables.

Each file loads in one transaction: its old rows are deleted, the new ones inserted and its SHA-256 recorded in
``raw_load_progress``, so an unchanged file is skipped next time, a changed one replaces its rows, and a crash or a bad
value leaves the table as it was (a re-run loads the file again, without duplicates).

The rows never pass through Python one by one: pyarrow's CSV reader parses blocks in C++ threads, the checks of the
spec (null-like fix-ups, required values, integer, date and timestamp formats) run as vectorized kernels on each block,
and the ADBC SQLite driver binds whole batches in C into the STRICT table. That driver carries its own copy of SQLite,
so the load runs in a child process: two SQLite libraries must never hold the same file inside one process (POSIX
locks are per process). When the bulk load refuses a file, :func:`first_error` reads it again row by row to name the
file, line, column and value. Memory stays flat in the file size.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import multiprocessing
import queue
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ingest.checksums import sha256_file
from ingest.schemas import FORMAT_NAMES, LINEAGE_COLUMNS, Fixup, RawSpec, RawTable
from xrh.warehouse import (
    BUSY_TIMEOUT_MS,
    quote,
    replace_table,
    table_columns,
    table_exists,
    timestamp_now,
    write_transaction,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

PROGRESS_DDL = """
create table if not exists raw_load_progress (
    source_file text primary key,
    table_name text not null,
    sha256 text not null,
    file_size integer not null,
    file_mtime_ns integer not null,
    rows integer not null,
    loaded_at text not null,
    run_id text
) strict
"""
FIXUPS_DDL = """
create table if not exists raw_load_fixups (
    source_file text not null,
    rule text not null,
    column_name text not null,
    count integer not null,
    primary key (source_file, rule, column_name)
) strict
"""
_BLOCK_BYTES = 1 << 22


class CsvLoadError(ValueError):
    """A file that does not match its spec. The message names the file, the line, the column and the value."""

    def __init__(
        self, file: str, reason: str, *, line: int | None = None, column: str | None = None, value: str | None = None
    ) -> None:
        where = file + (f" line {line}" if line is not None else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {reason}" + (f" (value {value!r})" if value is not None else ""))
        self.file, self.line, self.column, self.value = file, line, column, value


@dataclass
class FileResult:
    table: str
    file: str
    status: str  # loaded, unchanged, missing
    rows: int = 0
    seconds: float = 0.0
    fixups: Counter = field(default_factory=Counter)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def source_path(files_root: Path, relative: str) -> Path:
    """The file of a spec entry; a decompressed ``.csv`` stands in for a missing ``.csv.gz``."""
    path = files_root / relative
    if not path.exists() and path.suffix == ".gz" and path.with_suffix("").exists():
        return path.with_suffix("")
    return path


def check_header(path: Path, table: RawTable) -> None:
    """Raise :class:`CsvLoadError` unless the file's header row is the spec's column list."""
    with _open_text(path) as handle:
        header = next(csv.reader(handle), None)
    if header != table.header:
        missing = [c for c in table.header if c not in (header or [])]
        extra = [c for c in (header or []) if c not in table.header]
        raise CsvLoadError(
            table.file,
            f"header differs from the spec of {table.name}: expected {table.header}, found {header}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else ""),
            line=1,
        )


def first_error(path: Path, table: RawTable, fixups: tuple[Fixup, ...]) -> CsvLoadError | None:
    """Read a file row by row against its spec and return the first problem, or None if every row is valid."""
    rule_of = {value: rule.name for rule in fixups for value in rule.values}
    patterns = [re.compile(c.pattern) if c.pattern else None for c in table.columns]
    key_indexes = [table.header.index(name) for name in table.primary_key]
    keys: set[tuple[str, ...]] = set()
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if len(row) != len(table.columns):
                return CsvLoadError(table.file, f"expected {len(table.columns)} fields, found {len(row)}", line=line)
            for column, pattern, value in zip(table.columns, patterns, row, strict=False):
                if value in rule_of:
                    if column.required:
                        reason = f"null-like value in a required column (rule {rule_of[value]})"
                        return CsvLoadError(table.file, reason, line=line, column=column.name, value=value)
                    continue
                if value == "":
                    if column.required:
                        return CsvLoadError(
                            table.file, "missing value in a required column", line=line, column=column.name
                        )
                    continue
                valid = pattern.match(value) if pattern else True
                if valid and column.type == "real":
                    try:
                        float(value)
                    except ValueError:
                        valid = False
                if not valid:
                    reason = f"not {FORMAT_NAMES[column.type]}"
                    return CsvLoadError(table.file, reason, line=line, column=column.name, value=value)
            if key_indexes:
                key = tuple(row[i] for i in key_indexes)
                if key in keys:
                    described = ", ".join(f"{n}={v}" for n, v in zip(table.primary_key, key, strict=False))
                    return CsvLoadError(table.file, f"duplicate primary key ({described})", line=line)
                keys.add(key)
    return None


class _Refused(Exception):
    """The bulk load found a value its spec does not allow; the parent explains it with :func:`first_error`."""


def _checked_batches(path: Path, table: RawTable, fixups: tuple[Fixup, ...], loaded_at: str, counts: Counter):
    """pyarrow batches of the file, fix-ups applied and counted, types checked and cast, lineage columns added."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES),
        convert_options=pcsv.ConvertOptions(
            column_types={c.name: pa.string() for c in table.columns}, strings_can_be_null=True, null_values=[""]
        ),
    )
    fixup_values = [(rule.name, pa.array(sorted(rule.values))) for rule in fixups]
    for batch in reader:
        arrays = []
        for column in table.columns:
            values = batch.column(column.name)
            for rule, rule_values in fixup_values:
                hits = pc.is_in(values, value_set=rule_values)
                count = pc.sum(hits).as_py() or 0
                if count:
                    if column.required:
                        raise _Refused(f"{column.name}: null-like value in a required column")
                    counts[(rule, column.name)] += count
                    values = pc.if_else(hits, pa.scalar(None, pa.string()), values)
            if column.required and values.null_count:
                raise _Refused(f"{column.name}: missing value in a required column")
            if column.type == "integer":
                values = pc.cast(values, pa.int64())  # raises ArrowInvalid on a non-integer
            elif column.pattern and pc.any(pc.invert(pc.match_substring_regex(values, column.pattern))).as_py():
                raise _Refused(f"{column.name}: not {FORMAT_NAMES[column.type]}")
            elif column.type == "real":
                values = pc.cast(values, pa.float64())  # raises ArrowInvalid on a non-number
            arrays.append(values)
        arrays.append(pa.repeat(pa.scalar(table.file, pa.string()), batch.num_rows))
        arrays.append(pa.repeat(pa.scalar(loaded_at, pa.string()), batch.num_rows))
        yield pa.RecordBatch.from_arrays(arrays, names=table.header + [name for name, _ in LINEAGE_COLUMNS])


def _prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce ``items`` in a background thread, so parsing and checking overlap the inserts (both release the GIL)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                slots.put(item)
        except BaseException as error:  # handed to the consumer, which raises it
            slots.put(error)
        slots.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _arrow_schema(table: RawTable):
    import pyarrow as pa

    types = {"integer": pa.int64(), "real": pa.float64()}
    fields = [pa.field(c.name, types.get(c.type, pa.string())) for c in table.columns]
    return pa.schema(fields + [pa.field(name, pa.string()) for name, _ in LINEAGE_COLUMNS])


@dataclass(frozen=True)
class _Source:
    """One file to load and what ``raw_load_progress`` records of it."""

    path: Path
    sha256: str
    size: int
    mtime_ns: int
    loaded_at: str
    run_id: str | None


def _bulk_load(warehouse: Path, source: _Source, table: RawTable, fixups: tuple[Fixup, ...]) -> tuple[int, Counter]:
    """In the child process: replace the file's rows and record its progress, in one transaction."""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    counts: Counter = Counter()
    with adbc.connect(str(warehouse), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("pragma synchronous = normal")  # as the project's own connections (WAL: durable at checkpoint)
        cursor.execute("pragma cache_size = -16384")  # 16 MiB of page cache for the primary-key B-tree
        # Commit without copying the whole load from the WAL into the database file under the write lock; the next
        # ordinary commit (autocheckpoint) moves the pages.
        cursor.execute("pragma wal_autocheckpoint = 0")
        cursor.execute("begin immediate")
        try:
            cursor.execute(f"delete from {quote(table.name)} where _source_file = ?", (table.file,))
            batches = _prefetched(_checked_batches(source.path, table, fixups, source.loaded_at, counts))
            rows = cursor.adbc_ingest(
                table.name, pa.RecordBatchReader.from_batches(_arrow_schema(table), batches), mode="append"
            )
            cursor.execute(
                "insert or replace into raw_load_progress values (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    table.file,
                    table.name,
                    source.sha256,
                    source.size,
                    source.mtime_ns,
                    rows,
                    source.loaded_at,
                    source.run_id,
                ),
            )
            cursor.execute("delete from raw_load_fixups where source_file = ?", (table.file,))
            for (rule, column), count in sorted(counts.items()):
                cursor.execute("insert into raw_load_fixups values (?, ?, ?, ?)", (table.file, rule, column, count))
            cursor.execute("commit")
        except BaseException:
            cursor.execute("rollback")
            raise
    return rows, counts


def _ensure_table(conn: sqlite3.Connection, table: RawTable) -> None:
    """Create the raw table; if the spec's columns changed, rebuild it empty and forget its loaded files."""
    expected = table.header + [name for name, _ in LINEAGE_COLUMNS]
    with write_transaction(conn):
        if table_exists(conn, table.name):
            if table_columns(conn, table.name) == expected:
                return
            log.warning("%s: columns differ from the spec; rebuilding the table from its files", table.name)
            conn.execute(f"drop table {quote(table.name)}")
            conn.execute("delete from raw_load_progress where table_name = ?", (table.name,))
        conn.execute(table.create_sql())


def load_file(
    conn: sqlite3.Connection,
    warehouse: Path,
    files_root: Path,
    table: RawTable,
    fixups: tuple[Fixup, ...],
    run_id: str | None,
    loader: ProcessPoolExecutor,
) -> FileResult:
    """Load one spec entry's file unless it is unchanged since its last load; ``loader`` runs the bulk load."""
    path = source_path(files_root, table.file)
    if not path.exists():
        return FileResult(table.name, table.file, "missing")
    stat = path.stat()
    previous = conn.execute(
        "select sha256, file_size, file_mtime_ns from raw_load_progress where source_file = ?", (table.file,)
    ).fetchone()
    loaded_before = previous is not None and table_exists(conn, table.name)
    if loaded_before and previous[1:] == (stat.st_size, stat.st_mtime_ns):
        return FileResult(table.name, table.file, "unchanged")
    digest = sha256_file(path)
    if loaded_before and previous[0] == digest:
        with write_transaction(conn):
            conn.execute(
                "update raw_load_progress set file_size = ?, file_mtime_ns = ? where source_file = ?",
                (stat.st_size, stat.st_mtime_ns, table.file),
            )
        return FileResult(table.name, table.file, "unchanged")

    start = time.perf_counter()
    check_header(path, table)
    _ensure_table(conn, table)
    loaded_at = timestamp_now()
    source = _Source(path, digest, stat.st_size, stat.st_mtime_ns, loaded_at, run_id)
    try:
        rows, counts = loader.submit(_bulk_load, warehouse, source, table, fixups).result()
    except Exception as error:
        explained = first_error(path, table, fixups)
        if explained is not None:
            raise explained from error
        raise CsvLoadError(table.file, f"the bulk load failed: {error}") from error
    for (rule, column), count in sorted(counts.items()):
        log.warning("%s: rule %s set %d value(s) of column %s to NULL", table.file, rule, count, column)
    return FileResult(table.name, table.file, "loaded", rows, time.perf_counter() - start, counts)


def check_release_counts(conn: sqlite3.Connection, spec: RawSpec) -> list[tuple[str, int | None, int, str]]:
    """Compare each raw table's rows with the full release's count; write and return ``raw_load_checks``."""
    checks = []
    for table in spec.tables.values():
        exists = table_exists(conn, table.name)
        loaded = conn.execute(f"select count(*) from {quote(table.name)}").fetchone()[0] if exists else 0
        if table.release_rows is None:
            status = "no release count"
        elif loaded == table.release_rows:
            status = "matches release"
        elif loaded == 0:
            status = "not loaded"
        else:
            status = "differs from release"
        checks.append((table.name, table.release_rows, loaded, status))
    replace_table(
        conn,
        "raw_load_checks",
        checks,
        columns=[("table_name", "TEXT"), ("release_rows", "INTEGER"), ("loaded_rows", "INTEGER"), ("status", "TEXT")],
        primary_key=["table_name"],
    )
    return checks


def load_csv_tables(
    conn: sqlite3.Connection,
    warehouse: Path,
    files_root: Path,
    spec: RawSpec,
    *,
    tables: list[str] | None = None,
    run_id: str | None = None,
) -> list[FileResult]:
    """Load every table of ``spec`` (or the named ones) from ``files_root`` into ``warehouse``, file by file.

    ``conn`` is a connection to ``warehouse`` for the bookkeeping; the rows go in through the child process.
    """
    unknown = set(tables or ()) - set(spec.tables)
    if unknown:
        raise ValueError(f"unknown raw tables {sorted(unknown)}; known: {sorted(spec.tables)}")
    conn.execute(PROGRESS_DDL)
    conn.execute(FIXUPS_DDL)
    results = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as loader:
        for name in tables or spec.tables:
            result = load_file(conn, Path(warehouse), files_root, spec.tables[name], spec.fixups, run_id, loader)
            log.debug("%s: %s %s (%d rows, %.1f s)", name, result.status, result.file, result.rows, result.seconds)
            results.append(result)
    return results
