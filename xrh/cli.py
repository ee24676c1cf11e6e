"""The ``xrh`` command line.

``xrh`` itself knows only its own commands (settings, runs, tables). Each package above it adds its commands through the
``xrh.commands`` entry-point group (see pyproject.toml): an entry point names a ``register(subparsers)`` function that
adds one or more subcommands, each with ``handler=function(args, settings) -> exit code``. So imports go one way: the
packages import ``xrh``, never the reverse.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from xrh.settings import Settings, load_settings
from xrh.warehouse import connect, table_counts

ENTRY_POINT_GROUP = "xrh.commands"


def _settings_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings."""
    for name, value in vars(settings).items():
        print(f"{name:10} {value}")
    return 0


def _tables_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print every table and view in the warehouse with its row count."""
    if not settings.warehouse.exists():
        print(f"no warehouse at {settings.warehouse} yet", file=sys.stderr)
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        rows = table_counts(conn)
    width = max((len(name) for name, _, _ in rows), default=5)
    for name, kind, count in rows:
        print(f"{name:{width}}  {kind:5}  {count:>10,}")
    return 0


def _runs_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the most recent runs from the ``runs`` table."""
    if not settings.warehouse.exists():
        print(f"no warehouse at {settings.warehouse} yet", file=sys.stderr)
        return 1
    with connect(settings.warehouse, readonly=True) as conn:
        rows = conn.execute(
            "select run_id, kind, status, attempts, started_at, ended_at, coalesce(error, '') from runs "
            "order by started_at desc limit ?",
            (args.limit,),
        ).fetchall()
    for run_id, kind, status, attempts, started, ended, error in rows:
        print(f"{run_id:28} {kind:12} {status:9} attempts={attempts} {started} -> {ended or '...'} {error}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrh",
        description="X-ray harmonization warehouse: simulate or download MIMIC, ingest, build, train, harmonize.",
    )
    parser.add_argument("--config", help="YAML settings file (default: $XRH_CONFIG); XRH_* variables override it")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    settings = subparsers.add_parser(
        "settings", help="show the effective settings", description=_settings_command.__doc__
    )
    settings.set_defaults(handler=_settings_command)
    tables = subparsers.add_parser(
        "tables", help="list warehouse tables and row counts", description=_tables_command.__doc__
    )
    tables.set_defaults(handler=_tables_command)
    runs = subparsers.add_parser("runs", help="list recent job runs", description=_runs_command.__doc__)
    runs.add_argument("--limit", type=int, default=20, help="how many runs to show (default 20)")
    runs.set_defaults(handler=_runs_command)

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
    return int(args.handler(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
