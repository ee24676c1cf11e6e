"""The ml_* tables, declared in ``tables.yaml`` beside this module and written with :func:`xrh.tables.replace_rows`."""

from __future__ import annotations

from pathlib import Path

from xrh.tables import load_tables

TABLES = load_tables(Path(__file__).with_name("tables.yaml"))
