"""The run report: cohort counts, acquisition statistics, classifier metrics and the harmonization leaderboard, read
from the warehouse's tables, rendered as markdown (for Prefect artifacts) and as one self-contained HTML file (the
PNGs embedded). It only selects and formats; every figure comes from a mart or a result table."""

from __future__ import annotations

import base64
import html
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from xrh.warehouse import table_exists

# (title, table the section needs, query)
SECTIONS = (
    (
        "Cohort counts",
        "experiment_cohorts",
        "select cohort_name, label, count(*) as images, count(distinct subject_id) as patients"
        " from experiment_cohorts group by cohort_name, label order by cohort_name, label",
    ),
    (
        "Acquisition statistics",
        "report_acquisition_statistics",
        "select view_position, kvp_group, detector_type, images, patients, percent_of_images"
        " from report_acquisition_statistics order by images desc",
    ),
    (
        "Scanner classifier metrics (latest training run)",
        "ml_metrics",
        "select run_id, split, metric, round(value, 4) as value from ml_metrics"
        " where run_id = (select run_id from runs where kind = 'train' and status = 'succeeded'"
        " order by ended_at desc limit 1) and true_class is null order by split, metric",
    ),
    (
        "Harmonization leaderboard",
        "harmonization_leaderboard",
        "select * from harmonization_leaderboard order by rank",
    ),
)


TRAINING_PICTURES = ("confusion_matrix.png", "training_curves.png", "feature_embedding.png")


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[tuple]
    pictures: list[Path] = field(default_factory=list)


def latest_pictures(conn: sqlite3.Connection, cache_dir: Path) -> dict[str, list[Path]]:
    """The PNGs of the latest training and harmonization evaluation runs, by the section they illustrate."""

    def latest(kind: str) -> str | None:
        row = conn.execute(
            "select run_id from runs where kind = ? and status = 'succeeded' order by ended_at desc limit 1", (kind,)
        ).fetchone()
        return row[0] if row else None

    pictures: dict[str, list[Path]] = {}
    if table_exists(conn, "runs") and (training := latest("train")):
        folder = cache_dir / "runs" / training
        pictures[SECTIONS[2][0]] = [folder / name for name in TRAINING_PICTURES]
    if table_exists(conn, "runs") and (evaluation := latest("harmonize_evaluate")):
        pictures[SECTIONS[3][0]] = [cache_dir / "harmonized" / evaluation / "panel.png"]
    return pictures


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def collect(conn: sqlite3.Connection, pictures: dict[str, list[Path]]) -> list[Section]:
    """The sections whose tables exist, with the pictures given per section title."""
    sections = []
    for title, table, query in SECTIONS:
        if not table_exists(conn, table):
            continue
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description]
        sections.append(Section(title, columns, cursor.fetchall(), [p for p in pictures.get(title, []) if p.exists()]))
    return sections


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(section: Section) -> str:
    links = "".join(f"\n- [{p.name}]({p.resolve().as_uri()})" for p in section.pictures)
    return f"## {section.title}\n\n{markdown_table(section.columns, section.rows)}\n{links}\n"


def to_html(title: str, sections: list[Section], footer: str) -> str:
    """One HTML file with the tables and the PNGs inlined, so it can be mailed or archived alone."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%;margin:0.5em 0}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        header = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in section.rows
        )
        parts.append(f"<h2>{html.escape(section.title)}</h2><table><tr>{header}</tr>{body}</table>")
        for picture in section.pictures:
            encoded = base64.b64encode(picture.read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(picture.name)}' src='data:image/png;base64,{encoded}'>")
            parts.append(f"<figcaption>{html.escape(picture.name)}</figcaption></figure>")
    parts.append(f"<p>{html.escape(footer)}</p></body></html>")
    return "\n".join(parts)


def write_html(path: Path, text: str) -> Path:
    """Written aside and renamed, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path
