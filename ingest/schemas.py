"""The declarative spec of the raw tables (``raw_tables.yaml``) and the SQL it turns into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from xrh.tables import Column as DeclaredColumn
from xrh.tables import Table

RAW_TABLES_FILE = Path(__file__).with_name("raw_tables.yaml")

# Spec type -> (the declared column type it is stored as, regular expression a text value must match, or None).
COLUMN_TYPES: dict[str, tuple[str, str | None]] = {
    "integer": ("integer", r"^-?[0-9]+$"),  # as Arrow casts it: no leading "+"
    "real": ("real", None),
    "text": ("text", None),
    "date": ("text", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    "timestamp": ("text", r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"),
}
FORMAT_NAMES = {
    "integer": "an integer",
    "real": "a number",
    "date": "a date 'YYYY-MM-DD'",
    "timestamp": "a timestamp 'YYYY-MM-DD HH:MM:SS'",
}
# Spec type -> strptime format, and the calendar rules in words, of the types whose values must be real dates and times;
# a value that matches the layout but not the calendar (2150-02-30, 25:00:00) is refused.
CALENDAR_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}
_DATE_RULES = "month 01-12, a day the month has, February 29 in leap years only"
CALENDAR_RULES = {"date": _DATE_RULES, "timestamp": f"{_DATE_RULES}, hour 00-23, minute and second 00-59"}
LINEAGE_COLUMNS = (("_source_file", "TEXT"), ("_loaded_at", "TEXT"))
LINEAGE_DESCRIPTIONS = {"_source_file": "The file the row came from.", "_loaded_at": "When it was loaded (UTC)."}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool

    @property
    def pattern(self) -> str | None:
        """The regular expression a text value of this column must match (checked by the loader)."""
        return COLUMN_TYPES[self.type][1]

    @property
    def calendar_format(self) -> str | None:
        """The strptime format of a date or timestamp column (its values must exist on the calendar), else None."""
        return CALENDAR_FORMATS.get(self.type)


@dataclass(frozen=True)
class Fixup:
    """A named rule that turns null-like strings into NULL, counted and logged."""

    name: str
    values: frozenset[str]


@dataclass(frozen=True)
class RawTable:
    name: str
    file: str
    release_rows: int | None
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def header(self) -> list[str]:
        return [column.name for column in self.columns]

    def as_declared(self) -> Table:
        """The table as ``xrh.tables`` declares tables: what creates it and what the generated dbt sources document."""
        columns = [
            DeclaredColumn(c.name, COLUMN_TYPES[c.type][0], c.required, f"{c.name} as in {self.file} ({c.type})")
            for c in self.columns
        ]
        lineage = [DeclaredColumn(name, "text", True, LINEAGE_DESCRIPTIONS[name]) for name, _ in LINEAGE_COLUMNS]
        description = f"{self.file} as typed rows (spec: ingest/raw_tables.yaml)."
        return Table(self.name, description, (*columns, *lineage), self.primary_key, source="raw")


@dataclass(frozen=True)
class RawSpec:
    tables: dict[str, RawTable]
    fixups: tuple[Fixup, ...]


def load_spec(*paths: Path) -> RawSpec:
    """Read one or more spec files (later files add tables and rules) and validate them.

    Raises
    ------
    ValueError
        A missing field, an unknown column type, or a key column that is not a column; the message names file and table.
    """
    tables: dict[str, RawTable] = {}
    fixups: list[Fixup] = []
    for path in paths or (RAW_TABLES_FILE,):
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        for rule in spec.get("fixups", []):
            fixups.append(Fixup(name=rule["name"], values=frozenset(str(v) for v in rule["values"])))
        for name, body in (spec.get("tables") or {}).items():
            where = f"{path}: table {name}"
            if not name.startswith("raw_"):
                raise ValueError(f"{where}: raw table names start with 'raw_'")
            try:
                columns = tuple(
                    Column(name=str(c["name"]), type=str(c["type"]), required=bool(c.get("required", False)))
                    for c in body["columns"]
                )
                table = RawTable(
                    name=name,
                    file=str(body["file"]),
                    release_rows=body.get("release_rows"),
                    primary_key=tuple(body.get("primary_key", ())),
                    columns=columns,
                )
            except KeyError as error:
                raise ValueError(f"{where}: missing field {error.args[0]!r}") from error
            unknown_types = {c.type for c in columns} - set(COLUMN_TYPES)
            if unknown_types:
                known = sorted(COLUMN_TYPES)
                raise ValueError(f"{where}: unknown column types {sorted(unknown_types)}; known: {known}")
            missing_keys = set(table.primary_key) - set(table.header)
            if missing_keys:
                raise ValueError(f"{where}: primary key columns {sorted(missing_keys)} are not columns")
            tables[name] = table
    return RawSpec(tables=tables, fixups=tuple(fixups))


# The release's raw tables as declarations (entry point xrh.tables), for the generated dbt sources.
DECLARED = {name: table.as_declared() for name, table in load_spec().tables.items()}
