"""The ``xrh`` command line.

``xrh`` itself knows only its own commands (settings, runs, tables, dbt, build). Each package above it adds its
commands through the ``xrh.commands`` entry-point group (see pyproject.toml): an entry point names a
``register(subparsers)`` function that adds one or more subcommands, each with ``handler=function(args, settings) ->
exit code``. So imports go one way: the packages import ``xrh``, never the reverse.

A user's mistake ends in one line on stderr that says what is wrong and what to do next: exit code 2 for wrong
arguments (argparse's usage errors and :class:`xrh.errors.UsageError`), 1 for a job that cannot go on (a ValueError,
an OSError or an SQLite error a job raised, with its message); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import re
import sqlite3
import sys
from importlib.metadata import entry_points

from xrh.errors import UsageError
from xrh.processes import Terminated, terminate_gracefully
from xrh.report import collect, markdown_table, print_table
from xrh.runs import mark_interrupted_runs
from xrh.settings import Settings, load_settings
from xrh.warehouse import connect, table_counts, table_exists

ENTRY_POINT_GROUP = "xrh.commands"


def _explained(error: BaseException, settings: Settings) -> str:
    """The one line a user reads for an error that ended a command: what is wrong and what to do next."""
    missing = re.fullmatch(r"no such table: (?:main\.)?(\w+)", str(error))
    if isinstance(error, sqlite3.OperationalError) and missing:
        return (
            f"the warehouse {settings.warehouse} has no table {missing.group(1)} yet; run `xrh ingest all`, "
            "`xrh build` and `xrh split` first"
        )
    return str(error) or type(error).__name__


def _settings_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings and the environment variable of each."""
    rows = [(name, str(value), f"XRH_{name.upper()}") for name, value in vars(settings).items()]
    print_table("Settings (XRH_* variables over the --config file over the defaults)", ["setting", "value", "variable"],
                rows)  # fmt: skip
    return 0


def _tables_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print every table and view in the warehouse with its row count (or write the dbt sources file of the declared
    tables with --write-dbt-sources)."""
    if args.write_dbt_sources:
        from xrh.dbt import SOURCES_FILE
        from xrh.tables import dbt_sources_yaml

        SOURCES_FILE.write_text(dbt_sources_yaml(), encoding="utf-8")
        print(f"wrote {SOURCES_FILE}")
        return 0
    if not settings.warehouse.exists():
        print(f"no warehouse at {settings.warehouse} yet", file=sys.stderr)
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        rows = table_counts(conn)
    print_table(f"Tables and views of {settings.warehouse}", ["name", "kind", "rows"], rows)
    return 0


def _runs_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the most recent runs from the ``runs`` table (runs whose process is gone are marked interrupted first)."""
    if not settings.warehouse.exists():
        print(f"no warehouse at {settings.warehouse} yet", file=sys.stderr)
        return 1
    with connect(settings.warehouse) as conn:
        if table_exists(conn, "runs"):
            mark_interrupted_runs(conn)
        rows = conn.execute(
            "select run_id, kind, status, attempts, started_at, ended_at, coalesce(error, '') from runs "
            "order by started_at desc limit ?",
            (args.limit,),
        ).fetchall()
    columns = ["run", "kind", "status", "attempts", "started", "ended", "error"]
    print_table(f"The {args.limit} most recent runs", columns, rows)
    return 0


def _dbt_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run any dbt command against the warehouse of the settings (e.g. `xrh dbt test --select acquisition`)."""
    from xrh.dbt import run_dbt

    if not args.dbt_args:
        raise UsageError("name a dbt command and its arguments, e.g. `xrh dbt test --select acquisition`")
    return 0 if run_dbt(settings, args.dbt_args) else 1


def _has_raw_tables(settings: Settings) -> bool:
    with connect(settings.warehouse, readonly=True) as conn:
        return table_exists(conn, "raw_dicom_headers")


def _build_command(args: argparse.Namespace, settings: Settings) -> int:
    """`dbt build` (seeds, models, tests, unit tests), then print the acquisition and data-quality reports and the
    tests that warned (values real archives write that the warehouse nulled, mapped or excluded)."""
    from xrh.dbt import build_warehouse

    if not (settings.warehouse.exists() and _has_raw_tables(settings)):
        raise ValueError(f"no raw tables in {settings.warehouse} to build from; run `xrh ingest all` first")
    try:
        warnings = build_warehouse(settings, args.target)
    except RuntimeError as error:
        print(error)
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        for section in collect(conn, settings.cache_dir, keys=["acquisition", "data-quality"]):
            print(f"\n{section.title}\n")
            print(markdown_table(section.columns, section.rows))
    if warnings:
        print(f"\ndbt build passed with {len(warnings)} warning(s); the rows behind them are in data_quality:")
        for name, rows in warnings:
            print(f"  {name}: {rows:,} row(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrh",
        description="X-ray harmonization warehouse: simulate or download MIMIC, ingest, build, train, harmonize.",
    )
    parser.add_argument("--config", help="YAML settings file (default: $XRH_CONFIG); XRH_* variables override it")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error message")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    settings = subparsers.add_parser(
        "settings", help="show the effective settings", description=_settings_command.__doc__
    )
    settings.set_defaults(handler=_settings_command)
    tables = subparsers.add_parser(
        "tables", help="list warehouse tables and row counts", description=_tables_command.__doc__
    )
    tables.add_argument(
        "--write-dbt-sources",
        action="store_true",
        help="generate the dbt sources file from the table declarations (after changing a tables.yaml)",
    )
    tables.set_defaults(handler=_tables_command)
    runs = subparsers.add_parser("runs", help="list recent job runs", description=_runs_command.__doc__)
    runs.add_argument("--limit", type=int, default=20, help="how many runs to show (default 20)")
    runs.set_defaults(handler=_runs_command)

    dbt = subparsers.add_parser("dbt", help="run a dbt command on the warehouse", description=_dbt_command.__doc__)
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, metavar="ARGS", help="dbt's own arguments")
    dbt.set_defaults(handler=_dbt_command)
    build = subparsers.add_parser(
        "build", help="dbt build and the acquisition report", description=_build_command.__doc__
    )
    build.add_argument(
        "--target",
        choices=("sqlite", "duckdb"),
        default="sqlite",
        help="dbt target: the SQLite file itself (default) or DuckDB attaching it",
    )
    build.set_defaults(handler=_build_command)

    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        entry_point.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    terminate_gracefully()  # SIGTERM unwinds like Ctrl-C: runs end 'interrupted', worker pools are torn down
    try:
        return int(args.handler(args, settings) or 0)
    except (KeyboardInterrupt, Terminated) as stop:
        reason = stop or "interrupted"
        print(f"xrh {args.command}: {reason}; what was committed is kept, a re-run resumes", file=sys.stderr)
        return 130 if isinstance(stop, KeyboardInterrupt) else 143
    except UsageError as error:
        print(f"xrh {args.command}: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError, sqlite3.Error) as error:
        if args.debug:
            raise
        print(f"xrh {args.command}: {_explained(error, settings)} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
