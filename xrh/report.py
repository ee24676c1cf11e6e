"""The run report: cohort counts, acquisition statistics, classifier metrics and the harmonization leaderboard, read
from the warehouse's tables, rendered as markdown (for Prefect artifacts) and as one self-contained HTML file (the
PNGs embedded). It only selects and formats; every figure comes from a mart or a result table."""

from __future__ import annotations

import base64
import html
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from xrh.runs import latest_succeeded_run
from xrh.warehouse import table_exists

# (key, title, table the section needs, query; :training_run is the latest succeeded training run)
SECTIONS = (
    (
        "cohort-counts",
        "Cohort counts",
        "experiment_cohorts",
        "select cohort_name, label, count(*) as images, count(distinct subject_id) as patients"
        " from experiment_cohorts group by cohort_name, label order by cohort_name, label",
    ),
    (
        "acquisition",
        "Acquisition statistics",
        "report_acquisition_statistics",
        "select view_position, kvp_group, detector_type, images, patients, percent_of_images"
        " from report_acquisition_statistics order by images desc",
    ),
    (
        "data-quality",
        "Data quality: header values nulled, mapped or excluded (rules in dbt seeds)",
        "report_data_quality",
        "select rule, column_name, images, example_raw_values from report_data_quality order by images desc, rule",
    ),
    (
        "classifier-metrics",
        "Scanner classifier metrics (latest training run)",
        "ml_metrics",
        "select run_id, split, metric, round(value, 4) as value from ml_metrics"
        " where run_id = :training_run and true_class is null order by split, metric",
    ),
    (
        "leaderboard",
        "Harmonization leaderboard",
        "harmonization_leaderboard",
        "select * from harmonization_leaderboard order by rank",
    ),
)
TRAINING_PICTURES = ("confusion_matrix.png", "training_curves.png", "feature_embedding.png")


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
    """The sections (all, or those of ``keys``) whose tables exist, with the PNGs of the latest training run and
    harmonization evaluation."""
    training_run = latest_succeeded_run(conn, "train")
    evaluation_run = latest_succeeded_run(conn, "harmonize_evaluate")
    pictures = {
        "classifier-metrics": [cache_dir / "runs" / training_run / name for name in TRAINING_PICTURES]
        if training_run
        else [],
        "leaderboard": [cache_dir / "harmonized" / evaluation_run / "panel.png"] if evaluation_run else [],
    }
    sections = []
    for key, title, table, query in SECTIONS:
        if (keys is not None and key not in keys) or not table_exists(conn, table):
            continue
        cursor = conn.execute(query, {"training_run": training_run} if ":training_run" in query else {})
        columns = [d[0] for d in cursor.description]
        shown = [p for p in pictures.get(key, []) if p.exists()]
        sections.append(Section(key, title, columns, cursor.fetchall(), shown))
    return sections


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """The columns that hold at least one value (all of them when there are no rows)."""
    shown = [k for k in range(len(columns)) if not rows or any(row[k] is not None for row in rows)]
    lines = ["| " + " | ".join(columns[k] for k in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in shown) + " |" for row in rows]
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
