"""The ``report`` flow: the run report as Prefect markdown artifacts and as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import settings
from flows.warehouse import build_selected
from xrh.files import write_bytes_atomic
from xrh.report import collect, to_html, to_markdown
from xrh.warehouse import connect


@flow(name="report", log_prints=True)
def report_flow() -> str:
    """One markdown artifact per section (cohort counts, acquisition, classifier metrics, leaderboard, with their PNGs
    inlined so the Prefect UI shows them), and ``<data_root>/report.html``. Returns the HTML file's path."""
    configured = settings()
    build_selected("tag:over_results")  # the marts over job results, as of now
    with connect(configured.warehouse) as conn:
        sections = collect(conn, configured.cache_dir)
    for section in sections:
        create_markdown_artifact(to_markdown(section, embed_pictures=True), key=section.key, description=section.title)
        if section.key == "leaderboard":  # what a run ends with
            print(to_markdown(section))
    path = Path(configured.data_root) / "report.html"
    footer = f"warehouse: {configured.warehouse.resolve()}"
    write_bytes_atomic(path, to_html("X-ray harmonization warehouse: run report", sections, footer).encode())
    print(f"report: {path.resolve()}")
    return str(path.resolve())
