"""The harm_* tables (fitted parameters, harmonized images, the benchmark), declared in ``tables.yaml`` here."""

from __future__ import annotations

from pathlib import Path

from xrh.tables import load_tables

TABLES = load_tables(Path(__file__).with_name("tables.yaml"))
