"""What the harmonization jobs produce: the harm_* tables (fitted parameters, harmonized images, the benchmark),
declared in ``tables.yaml`` here, and the benchmark's default size. A light module: the command line and the flows
read their defaults from it without importing torch."""

from __future__ import annotations

from pathlib import Path

from xrh.tables import load_tables

TABLES = load_tables(Path(__file__).with_name("tables.yaml"))
# Epochs of each classifier the benchmark retrains: the one default of the command line, the flows and the evaluation.
EVALUATION_EPOCHS = 40
