"""The ``report`` flow: the run report as Prefect markdown artifacts and as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import settings
from xrh.report import collect, latest_pictures, to_html, to_markdown, write_html
from xrh.warehouse import connect


@flow(name="report", log_prints=True)
def report_flow() -> str:
    """One markdown artifact per section (cohort counts, acquisition, classifier metrics, leaderboard, with links to
    the PNGs), and ``<data_root>/report.html``. Returns the HTML file's path."""
    configured = settings()
    with connect(configured.warehouse) as conn:
        sections = collect(conn, latest_pictures(conn, configured.cache_dir))
    for section in sections:
        key = section.title.lower().split(" (")[0].replace(" ", "-")
        create_markdown_artifact(to_markdown(section), key=key, description=section.title)
    for section in sections[-1:]:  # the leaderboard, where there is one: what a run ends with
        print(to_markdown(section))
    path = write_html(
        Path(configured.data_root) / "report.html",
        to_html("X-ray harmonization warehouse: run report", sections, f"warehouse: {configured.warehouse.resolve()}"),
    )
    print(f"report: {path.resolve()}")
    return str(path.resolve())
