"""Stream the PhysioNet CSVs into typed raw tables.

Each file loads in one transaction: its old rows are deleted, the new ones inserted and its SHA-256 recorded in
``raw_load_progress``, so an unchanged file is skipped next time, a changed one replaces its rows, and a crash or a bad
value leaves the table as it was (a re-run loads the file again, without duplicates). A file that fails does not stop
the run: every other file is loaded, then :class:`CsvLoadFailed` lists every failure, one line each.

The rows never pass through Python one by one: pyarrow's CSV reader parses blocks in C++ threads, the checks of the
spec (null-like fix-ups, required values, integer formats, dates and timestamps that exist on the calendar) run as
vectorized kernels on each block, and the ADBC SQLite driver binds whole batches in C into the STRICT table. That driver
carries its own copy of SQLite, so the load runs in a child process: two SQLite libraries must never hold the same file
inside one process (POSIX locks are per process). When the bulk load refuses a file, :func:`first_error` reads it again
row by row to name the file, line, column and value, and what to do next.

The bulk load's memory stays flat in the file size (the row-by-row explanation keeps the primary keys it has seen): a
row longer than :data:`MAX_ROW_BYTES` (4 MiB; a line, or several joined by a quoted newline) is refused, naming its
line, after reading at most about that much of it. Only regular files are read: a FIFO, socket or directory in place of
a CSV is refused without opening it (opening a FIFO blocks until a writer comes).
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import queue
import re
import sqlite3
import stat
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from ingest.schemas import CALENDAR_RULES, FORMAT_NAMES, LINEAGE_COLUMNS, Column, Fixup, RawSpec, RawTable
from xrh.files import file_kind, sha256_file
from xrh.processes import worker_pool
from xrh.tables import ensure_table, load_tables, replace_rows
from xrh.warehouse import (
    BUSY_TIMEOUT_MS,
    quote,
    table_columns,
    table_exists,
    timestamp_now,
    write_transaction,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLES = load_tables(Path(__file__).with_name("tables.yaml"))
# The longest row (bytes up to and including its newline) a file may have; also pyarrow's block size, which bounds what
# its reader holds of one row. MIMIC's longest rows are a few hundred bytes.
MAX_ROW_BYTES = 4 << 20

FIX_THE_FILE = "correct the file (or its spec: raw_tables.yaml, --spec), then run the load again"
DOWNLOAD_AGAIN = "download the file again (xrh download), then run the load again"
MAKE_IT_READABLE = "make it a file this user can read, then run the load again"
PUT_THE_FILE_THERE = "put the CSV file itself there, then run the load again"


class CsvLoadError(ValueError):
    """A file that cannot be loaded. The one-line message names the file (and the line, column and value where known),
    says what was expected and what to do next."""

    def __init__(
        self,
        file: str,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
        remedy: str = FIX_THE_FILE,
    ) -> None:
        where = file + (f" line {line}" if line is not None else "") + (f", column {column!r}" if column else "")
        shown = f" (value {value!r})" if value is not None else ""
        super().__init__(f"{where}: {' '.join(reason.splitlines())}{shown}; {remedy}")
        self.file, self.line, self.column, self.value = file, line, column, value


@dataclass
class FileResult:
    table: str
    file: str
    status: str  # loaded, unchanged, missing, failed
    rows: int = 0
    seconds: float = 0.0
    fixups: Counter = field(default_factory=Counter)
    error: CsvLoadError | None = None


class CsvLoadFailed(Exception):
    """Files of a run that could not be loaded; every other file of the run was. ``results`` has every file's result,
    ``errors`` the failures, which the message lists one line each."""

    def __init__(self, results: list[FileResult]) -> None:
        self.results = results
        self.errors = [result.error for result in results if result.error is not None]
        listed = "\n".join(str(error) for error in self.errors)
        super().__init__(f"{len(self.errors)} of {len(results)} CSV files failed to load:\n{listed}")


@contextmanager
def _described_read_errors(file: str, line: int | None = None) -> Iterator[None]:
    """Turn an error met reading ``file`` (at ``line``) into a :class:`CsvLoadError` that says what to do next."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        reason = f"the gzip stream is cut short or damaged ({error})"
        raise CsvLoadError(file, reason, line=line, remedy=DOWNLOAD_AGAIN) from error
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 text ({error.reason} at byte {error.start} of the line)"
        raise CsvLoadError(file, reason, line=line, remedy=DOWNLOAD_AGAIN) from error
    except csv.Error as error:
        raise CsvLoadError(file, f"not a valid CSV row ({error})", line=line) from error
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
        raise CsvLoadError(file, reason, line=line, remedy=MAKE_IT_READABLE) from error


def _regular_file_stat(path: Path, file: str) -> os.stat_result:
    """The status of ``path``, checked (without opening it) to be a regular file.

    Raises
    ------
    CsvLoadError
        ``path`` is a directory, FIFO, socket or device (opening a FIFO would wait for a writer), or cannot be stat'ed.
    """
    with _described_read_errors(file):
        status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        reason = f"is {file_kind(status.st_mode)}, not a regular file ({path})"
        raise CsvLoadError(file, reason, remedy=PUT_THE_FILE_THERE)
    return status


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


class _CappedLines:
    """The lines of a binary stream as text, for :func:`csv.reader`, never reading more of one row than its cap.

    A row is the lines read since :meth:`start_row` (more than one when a quoted value holds a newline).
    """

    def __init__(self, handle: BinaryIO, file: str, max_row_bytes: int) -> None:
        self.handle, self.file, self.max_row_bytes = handle, file, max_row_bytes
        self.lines_read = 0
        self.row_line = 1
        self.row_bytes = 0

    def start_row(self) -> None:
        self.row_line = self.lines_read + 1
        self.row_bytes = 0

    def __iter__(self) -> _CappedLines:
        return self

    def __next__(self) -> str:
        line = self.lines_read + 1
        with _described_read_errors(self.file, line):
            raw = self.handle.readline(self.max_row_bytes - self.row_bytes + 1)
        if not raw:
            raise StopIteration
        self.lines_read = line
        self.row_bytes += len(raw)
        if self.row_bytes > self.max_row_bytes:
            reason = f"a row longer than {self.max_row_bytes:,} bytes, the most a CSV row may have"
            raise CsvLoadError(self.file, reason, line=self.row_line, remedy=DOWNLOAD_AGAIN)
        with _described_read_errors(self.file, line):
            return raw.decode("utf-8")


def _csv_rows(path: Path, file: str, max_row_bytes: int) -> Iterator[tuple[int, list[str]]]:
    """The rows of a CSV file (gzip or plain), header included, each with the line it starts on.

    Reads at most ``max_row_bytes`` of any row; every read problem is raised as a :class:`CsvLoadError`. Close the
    generator (``contextlib.closing``) when stopping early: it restores the csv module's process-wide field limit.
    """
    previous_field_limit = csv.field_size_limit(max_row_bytes)  # a field is never longer than its row
    try:
        with _described_read_errors(file):
            handle = _open_binary(path)
        with handle:
            lines = _CappedLines(handle, file, max_row_bytes)
            reader = csv.reader(lines)
            while True:
                lines.start_row()
                with _described_read_errors(file, lines.row_line):
                    row = next(reader, None)
                if row is None:
                    return
                yield lines.row_line, row
    finally:
        csv.field_size_limit(previous_field_limit)


def source_path(files_root: Path, relative: str) -> Path:
    """The file of a spec entry; a decompressed ``.csv`` stands in for a missing ``.csv.gz``."""
    path = files_root / relative
    if not path.exists() and path.suffix == ".gz" and path.with_suffix("").exists():
        return path.with_suffix("")
    return path


def check_header(path: Path, table: RawTable, max_row_bytes: int = MAX_ROW_BYTES) -> None:
    """Raise :class:`CsvLoadError` unless the file's header row is the spec's column list."""
    with closing(_csv_rows(path, table.file, max_row_bytes)) as rows:
        _, header = next(rows, (1, None))
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


def _value_problem(column: Column, pattern: re.Pattern | None, value: str, rule_of: dict[str, str]) -> str | None:
    """Why one text value does not fit its column, as the bulk load judges it; None if it fits."""
    if value in rule_of:
        return f"null-like value in a required column (rule {rule_of[value]})" if column.required else None
    if value == "":
        return "missing value in a required column" if column.required else None
    if pattern and not pattern.match(value):
        return f"not {FORMAT_NAMES[column.type]}"
    if column.type == "real":
        try:
            float(value)
        except ValueError:
            return f"not {FORMAT_NAMES[column.type]}"
    if column.calendar_format:
        try:
            datetime.strptime(value, column.calendar_format)
        except ValueError:
            return f"not {FORMAT_NAMES[column.type]} on the calendar ({CALENDAR_RULES[column.type]})"
    return None


def _row_problem(
    table: RawTable, patterns: list[re.Pattern | None], rule_of: dict[str, str], line: int, row: list[str]
) -> CsvLoadError | None:
    """The first field of a row that does not fit its column, or a wrong field count; None if the row fits."""
    if len(row) != len(table.columns):
        return CsvLoadError(table.file, f"expected {len(table.columns)} fields, found {len(row)}", line=line)
    for column, pattern, value in zip(table.columns, patterns, row, strict=True):
        reason = _value_problem(column, pattern, value, rule_of)
        if reason:
            return CsvLoadError(table.file, reason, line=line, column=column.name, value=value or None)
    return None


def first_error(
    path: Path, table: RawTable, fixups: tuple[Fixup, ...], max_row_bytes: int = MAX_ROW_BYTES
) -> CsvLoadError | None:
    """Read a file row by row against its spec and return the first problem, or None if every row is valid.

    Reading problems (a damaged gzip stream, a row over ``max_row_bytes``, text that is not UTF-8) are problems too.
    """
    rule_of = {value: rule.name for rule in fixups for value in rule.values}
    patterns = [re.compile(c.pattern) if c.pattern else None for c in table.columns]
    key_indexes = [table.header.index(name) for name in table.primary_key]
    keys: set[tuple[str, ...]] = set()
    with closing(_csv_rows(path, table.file, max_row_bytes)) as rows:
        try:
            next(rows, None)  # the header, checked before the load
            for line, row in rows:
                problem = _row_problem(table, patterns, rule_of, line, row)
                if problem:
                    return problem
                if key_indexes:
                    key = tuple(row[i] for i in key_indexes)
                    if key in keys:
                        described = ", ".join(f"{n}={v}" for n, v in zip(table.primary_key, key, strict=True))
                        return CsvLoadError(table.file, f"duplicate primary key ({described})", line=line)
                    keys.add(key)
        except CsvLoadError as problem:
            return problem
    return None


class _BulkLoadFailed(Exception):
    """Why the child's bulk load stopped (a value its spec refuses, a read error, a SQLite error), as one line of text.

    Only text crosses back to the parent, which explains the file with :func:`first_error`: ADBC's errors cannot be
    unpickled there, and a result that cannot be unpickled breaks the process pool for every later file of the run.
    """

    @classmethod
    def of(cls, error: Exception) -> _BulkLoadFailed:
        lines = str(error).splitlines()
        return cls(f"{type(error).__name__}: {lines[0] if lines else ''}")


def _longest_row_bytes(batch) -> int:
    """The bytes of the batch's longest row as an unquoted CSV line: its fields, the commas and the newline."""
    import pyarrow.compute as pc

    lengths = [pc.fill_null(pc.binary_length(column), 0) for column in batch.columns]
    total = lengths[0]
    for more in lengths[1:]:
        total = pc.add(total, more)
    return (pc.max(total).as_py() or 0) + batch.num_columns


def _checked_batches(
    path: Path, table: RawTable, fixups: tuple[Fixup, ...], loaded_at: str, counts: Counter, max_row_bytes: int
):
    """pyarrow batches of the file, fix-ups applied and counted, types checked and cast, lineage columns added."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    # A block of max_row_bytes bounds the reader's memory: it refuses a row spanning two block boundaries ("straddling
    # object"); the row length check below refuses the shorter rows over the cap that span only one.
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=max_row_bytes),
        convert_options=pcsv.ConvertOptions(
            column_types={c.name: pa.string() for c in table.columns}, strings_can_be_null=True, null_values=[""]
        ),
    )
    fixup_values = [(rule.name, pa.array(sorted(rule.values))) for rule in fixups]
    for batch in reader:
        if _longest_row_bytes(batch) > max_row_bytes:
            raise _BulkLoadFailed(f"a row longer than {max_row_bytes:,} bytes")
        arrays = []
        for column in table.columns:
            values = batch.column(column.name)
            for rule, rule_values in fixup_values:
                hits = pc.is_in(values, value_set=rule_values)
                count = pc.sum(hits).as_py() or 0
                if count:
                    if column.required:
                        raise _BulkLoadFailed(f"{column.name}: null-like value in a required column")
                    counts[(rule, column.name)] += count
                    values = pc.if_else(hits, pa.scalar(None, pa.string()), values)
            if column.required and values.null_count:
                raise _BulkLoadFailed(f"{column.name}: missing value in a required column")
            if column.type == "integer":
                values = pc.cast(values, pa.int64())  # raises ArrowInvalid on a non-integer
            elif column.type == "real":
                values = pc.cast(values, pa.float64())  # raises ArrowInvalid on a non-number
            elif column.pattern:
                if pc.any(pc.invert(pc.match_substring_regex(values, column.pattern))).as_py():
                    raise _BulkLoadFailed(f"{column.name}: not {FORMAT_NAMES[column.type]}")
                # Arrow's ISO-8601 cast refuses what is not on the calendar (month 13, February 30, hour 25), where its
                # strptime would roll 2150-02-30 over to March 2; the text itself is what the table keeps.
                pc.cast(values, pa.timestamp("s"))
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


def _bulk_load(
    warehouse: Path, source: _Source, table: RawTable, fixups: tuple[Fixup, ...], max_row_bytes: int
) -> tuple[int, Counter]:
    """In the child process: replace the file's rows and record its progress, in one transaction.

    Raises
    ------
    _BulkLoadFailed
        Whatever stopped the load (the transaction rolled back).
    """
    try:
        return _replace_rows(warehouse, source, table, fixups, max_row_bytes)
    except Exception as error:
        raise _BulkLoadFailed.of(error) from error


def _replace_rows(
    warehouse: Path, source: _Source, table: RawTable, fixups: tuple[Fixup, ...], max_row_bytes: int
) -> tuple[int, Counter]:
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
            batches = _prefetched(_checked_batches(source.path, table, fixups, source.loaded_at, counts, max_row_bytes))
            rows = cursor.adbc_ingest(
                table.name, pa.RecordBatchReader.from_batches(_arrow_schema(table), batches), mode="append"
            )
            # The bookkeeping rows go in with the data, in this transaction (by column name, as xrh.tables writes).
            progress = {
                "source_file": table.file,
                "table_name": table.name,
                "sha256": source.sha256,
                "file_size": source.size,
                "file_mtime_ns": source.mtime_ns,
                "rows": rows,
                "loaded_at": source.loaded_at,
                "run_id": source.run_id,
            }
            columns, marks = ", ".join(progress), ", ".join("?" * len(progress))
            cursor.execute(
                f"insert or replace into raw_load_progress ({columns}) values ({marks})", tuple(progress.values())
            )
            cursor.execute("delete from raw_load_fixups where source_file = ?", (table.file,))
            for (rule, column), count in sorted(counts.items()):
                cursor.execute(
                    "insert into raw_load_fixups (source_file, rule, column_name, count) values (?, ?, ?, ?)",
                    (table.file, rule, column, count),
                )
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
        conn.execute(table.as_declared().create_sql())


def load_file(
    conn: sqlite3.Connection,
    warehouse: Path,
    files_root: Path,
    table: RawTable,
    fixups: tuple[Fixup, ...],
    run_id: str | None,
    loader: ProcessPoolExecutor,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> FileResult:
    """Load one spec entry's file unless it is unchanged since its last load; ``loader`` runs the bulk load.

    Raises
    ------
    CsvLoadError
        The file is not a readable regular file, or does not match its spec; its table and its ``raw_load_progress``
        row are as they were.
    """
    path = source_path(files_root, table.file)
    if not path.exists():
        return FileResult(table.name, table.file, "missing")
    file_stat = _regular_file_stat(path, table.file)
    previous = conn.execute(
        "select sha256, file_size, file_mtime_ns from raw_load_progress where source_file = ?", (table.file,)
    ).fetchone()
    loaded_before = previous is not None and table_exists(conn, table.name)
    if loaded_before and previous[1:] == (file_stat.st_size, file_stat.st_mtime_ns):
        return FileResult(table.name, table.file, "unchanged")
    with _described_read_errors(table.file):
        digest = sha256_file(path)
    if loaded_before and previous[0] == digest:
        with write_transaction(conn):
            conn.execute(
                "update raw_load_progress set file_size = ?, file_mtime_ns = ? where source_file = ?",
                (file_stat.st_size, file_stat.st_mtime_ns, table.file),
            )
        return FileResult(table.name, table.file, "unchanged")

    start = time.perf_counter()
    check_header(path, table, max_row_bytes)
    _ensure_table(conn, table)
    loaded_at = timestamp_now()
    source = _Source(path, digest, file_stat.st_size, file_stat.st_mtime_ns, loaded_at, run_id)
    try:
        rows, counts = loader.submit(_bulk_load, warehouse, source, table, fixups, max_row_bytes).result()
    except Exception as error:
        explained = first_error(path, table, fixups, max_row_bytes)
        if explained is not None:
            raise explained from error
        raise CsvLoadError(
            table.file, f"the bulk load failed: {error}", remedy="fix what the error names, then run the load again"
        ) from error
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
    names = ("table_name", "release_rows", "loaded_rows", "status")
    replace_rows(
        conn, {TABLES["raw_load_checks"]: [dict(zip(names, check, strict=True)) for check in checks]}, where={}
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
    max_row_bytes: int = MAX_ROW_BYTES,
) -> list[FileResult]:
    """Load every table of ``spec`` (or the named ones) from ``files_root`` into ``warehouse``, file by file.

    Parameters
    ----------
    conn
        A connection to ``warehouse`` for the bookkeeping; the rows go in through a child process.
    warehouse, files_root
        The SQLite file, and the folder the spec's file paths are relative to.
    spec
        The raw tables and fix-up rules.
    tables
        Only these raw tables (default: all of ``spec``).
    run_id
        The run recorded in ``raw_load_progress``.
    max_row_bytes
        The longest row a file may have (default :data:`MAX_ROW_BYTES`).

    Returns
    -------
    list of FileResult
        One per file, when every file loaded, was unchanged or is missing.

    Raises
    ------
    CsvLoadFailed
        After every other file was loaded: the files that could not be, each with its :class:`CsvLoadError`.
    ValueError
        A name in ``tables`` that ``spec`` does not have.
    """
    unknown = set(tables or ()) - set(spec.tables)
    if unknown:
        raise ValueError(f"unknown raw tables {sorted(unknown)}; known: {sorted(spec.tables)}")
    with write_transaction(conn):
        for name in ("raw_load_progress", "raw_load_fixups"):
            ensure_table(conn, TABLES[name])
    results = []
    # The child is stopped with the command (Ctrl-C, SIGTERM, or this process gone), never left loading on its own.
    with worker_pool(1, start_method="spawn") as loader:
        for name in tables or spec.tables:
            table = spec.tables[name]
            try:
                result = load_file(conn, Path(warehouse), files_root, table, spec.fixups, run_id, loader, max_row_bytes)
            except CsvLoadError as error:
                result = FileResult(table.name, table.file, "failed", error=error)
            log.debug("%s: %s %s (%d rows, %.1f s)", name, result.status, result.file, result.rows, result.seconds)
            results.append(result)
    if any(result.error for result in results):
        raise CsvLoadFailed(results)
    return results
