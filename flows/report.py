"""The ``report`` flow: the run report as Prefect markdown artifacts and as one self-contained HTML file."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_image_artifact, create_markdown_artifact

from flows.common import settings
from flows.warehouse import build_selected
from xrh.files import write_bytes_atomic
from xrh.report import collect, data_uri, to_html, to_markdown
from xrh.warehouse import connect


@flow(name="report", log_prints=True)
def report_flow() -> str:
    """One markdown artifact per section (cohort counts, acquisition, classifier metrics, leaderboard, with their PNGs
    inlined so the Prefect UI shows them), one image artifact per PNG (the UI's Artifacts page lists them by key), and
    ``<data_root>/report.html``. Returns the HTML file's path."""
    configured = settings()
    build_selected("tag:over_results")  # the marts over job results, as of now
    with connect(configured.warehouse) as conn:
        sections = collect(conn, configured.cache_dir)
    for section in sections:
        create_markdown_artifact(to_markdown(section, embed_pictures=True), key=section.key, description=section.title)
        for picture in section.pictures:
            # Inlined: the UI's browser cannot open the data root's files. Keys allow lowercase letters, digits, dashes.
            key = re.sub(r"[^a-z0-9]+", "-", f"{section.key}-{picture.stem}".lower()).strip("-")
            create_image_artifact(data_uri(picture), key=key, description=f"{section.title}: {picture.name}")
        if section.key == "leaderboard":  # what a run ends with
            print(to_markdown(section))
    path = Path(configured.data_root) / "report.html"
    footer = f"warehouse: {configured.warehouse.resolve()}"
    write_bytes_atomic(path, to_html("X-ray harmonization warehouse: run report", sections, footer).encode())
    print(f"report: {path.resolve()}")
    return str(path.resolve())
