"""The run report, assembled from sections that the packages register (entry-point group ``xrh.report``, as the
commands are): each section is a query over a mart or result table and, optionally, the pictures of the run it shows.
Rendered as markdown (for Prefect artifacts) and as one self-contained HTML file (the PNGs embedded). It only selects
and formats; every figure comes from the warehouse. This floor knows no section, table or picture by name.
"""

from __future__ import annotations

import base64
import html
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from xrh.warehouse import table_exists

ENTRY_POINT_GROUP = "xrh.report"


@dataclass(frozen=True)
class ReportSection:
    """A section of the report: ``query`` over ``table`` (skipped while the table does not exist), ordered by
    ``order`` among all sections, with ``pictures(conn, cache_dir)`` giving the PNG files to show beside it."""

    key: str
    title: str
    table: str
    query: str
    order: int
    pictures: Callable[[sqlite3.Connection, Path], list[Path]] | None = None


@cache
def registered_sections() -> tuple[ReportSection, ...]:
    """Every section the installed packages register, in report order."""
    sections = [section for point in entry_points(group=ENTRY_POINT_GROUP) for section in point.load()]
    return tuple(sorted(sections, key=lambda section: section.order))


# The warehouse's own sections: marts of the dbt build that xrh runs.
WAREHOUSE_SECTIONS = (
    ReportSection(
        "cohort-counts",
        "Cohort counts",
        "report_cohort_counts",
        "select cohort_name, label, label_name, images, patients from report_cohort_counts order by cohort_name, label",
        order=10,
    ),
    ReportSection(
        "acquisition",
        "Acquisition statistics",
        "report_acquisition_statistics",
        "select view_position, kvp_group, detector_type, images, patients, percent_of_images"
        " from report_acquisition_statistics order by images desc",
        order=20,
    ),
    ReportSection(
        "data-quality",
        "Data quality: header values nulled, mapped or excluded (rules in dbt seeds)",
        "report_data_quality",
        "select rule, column_name, images, example_raw_values from report_data_quality order by images desc, rule",
        order=30,
    ),
)


@dataclass
class Section:
    key: str
    title: str
    columns: list[str]
    rows: list[tuple]
    pictures: list[Path] = field(default_factory=list)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def collect(conn: sqlite3.Connection, cache_dir: Path, keys: Iterable[str] | None = None) -> list[Section]:
    """The registered sections (all, or those of ``keys``) whose tables exist, with their pictures that exist."""
    sections = []
    for spec in registered_sections():
        if (keys is not None and spec.key not in keys) or not table_exists(conn, spec.table):
            continue
        cursor = conn.execute(spec.query)
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        shown = [p for p in (spec.pictures(conn, cache_dir) if spec.pictures else []) if p.exists()]
        sections.append(Section(spec.key, spec.title, columns, rows, shown))
    return sections


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """The columns that hold at least one value (all of them when there are no rows)."""
    shown = [k for k in range(len(columns)) if not rows or any(row[k] is not None for row in rows)]
    lines = ["| " + " | ".join(columns[k] for k in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in shown) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, columns: list[str], rows: list[tuple]) -> None:
    """A table on the terminal (rich): a title, a header, aligned columns, numbers on the right. Piped output is not
    wrapped at 80 characters."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Text, not strings: rich would read "[...]" in an error message or a path as markup.
    table = Table(title=Text(title, style="bold"), title_justify="left")
    for k, column in enumerate(columns):
        numeric = bool(rows) and all(isinstance(row[k], int | float) or row[k] is None for row in rows)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(Text(f"{value:,}" if isinstance(value, int) else _cell(value)) for value in row))
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def data_uri(picture: Path) -> str:
    """A PNG as a ``data:`` URI: shown by a browser wherever the page came from (a file, the Prefect UI)."""
    return f"data:image/png;base64,{base64.b64encode(picture.read_bytes()).decode()}"


def to_markdown(section: Section, *, embed_pictures: bool = False) -> str:
    """The section as markdown: its table, and its pictures as links to the files or, with ``embed_pictures``, inlined
    (what a Prefect artifact needs: the UI cannot open the data root's files)."""
    if embed_pictures:
        pictures = "".join(f"\n![{p.name}]({data_uri(p)})\n" for p in section.pictures)
    else:
        pictures = "".join(f"\n- [{p.name}]({p.resolve().as_uri()})" for p in section.pictures)
    return f"## {section.title}\n\n{markdown_table(section.columns, section.rows)}\n{pictures}\n"


def to_html(title: str, sections: list[Section], footer: str) -> str:
    """One HTML file with the tables and the PNGs inlined, so it can be mailed or archived alone."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%;margin:0.5em 0}"
        ".wide{overflow-x:auto;max-width:100%}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        header = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in section.rows
        )
        table = f"<div class='wide'><table><tr>{header}</tr>{body}</table></div>"
        parts.append(f"<h2>{html.escape(section.title)}</h2>{table}")
        for picture in section.pictures:
            parts.append(f"<figure><img alt='{html.escape(picture.name)}' src='{data_uri(picture)}'>")
            parts.append(f"<figcaption>{html.escape(picture.name)}</figcaption></figure>")
    parts.append(f"<p>{html.escape(footer)}</p></body></html>")
    return "\n".join(parts)
