"""Speed-up of the flows' Dask-mapped steps from 1 to 2 local workers: the DICOM header walk and harmonization apply.

Run: .venv/bin/python benchmarks/scale.py [--files 8000] [--images 240]

Each step runs inside a real Prefect flow on prefect-dask's ``DaskTaskRunner`` with a local cluster of 1, then 2
worker processes (one thread each), through the same mappers the ``ingest`` and ``harmonize`` flows use; the time is
measured inside the flow (the cluster's start-up is printed apart). Batch caching is off so both runs do the work.
The same batches are then run on plain Dask (``client.map``, no Prefect task around each) to show what the tasks'
bookkeeping costs.
Inputs: the DICOM tree of ``benchmarks/ingest.py`` (``data/bench/dicom-20000``, simulated first if missing) and a
simulated set of 512-pixel images harmonized with exact CDF matching (``data/bench/scale``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xrh.settings import load_settings  # noqa: E402

BENCH = Path("data/bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8000, help="DICOM headers to read (default 8000)")
    parser.add_argument("--images", type=int, default=240, help="images to harmonize (default 240)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="xrh-scale-prefect-"))
    from flows.cli import prefect_api, prefect_environment

    settings = load_settings(environ={"XRH_DATA_ROOT": str(BENCH / "scale"), "XRH_PREFECT_HOME": str(home)})
    prefect_environment(settings, None)
    os.environ["PREFECT_HOME"] = str(home)

    import numpy as np
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from flows.common import mapper_of, process_batch, read_batch
    from harmonize.fitting import Harmonization, apply_batch
    from harmonize.methods import image_method
    from ingest.dicom_headers import FILES_PER_REMOTE_TASK, read_files, walk
    from ingest.images import load_values
    from simulate.generate import simulate_dataset
    from xrh.batches import batches_of

    dicom_root = BENCH / "dicom-20000" / "physionet.org/files/mimic-cxr/2.1.0"
    if not (dicom_root / "files").is_dir():
        simulate_dataset(BENCH / "dicom-20000", patients=4500, seed=11, image_size=64, workers=2)
    entries = sorted(walk(dicom_root / "files", stored_relative_to=dicom_root, dcm_only=True), key=lambda e: e.stored)
    entries = entries[: args.files]
    header_batches = batches_of(entries, FILES_PER_REMOTE_TASK)

    image_root = BENCH / "scale"
    if not (image_root / "physionet.org").is_dir():
        simulate_dataset(image_root, patients=max(12, args.images // 4), seed=5, image_size=512, workers=2)
    sources = sorted((image_root / "physionet.org/files/mimic-cxr/2.1.0/files").rglob("*.dcm"))[: args.images]
    method = image_method("cdf")
    params = method.fit(load_values(path) for path in sources[:40])
    out = Path(tempfile.mkdtemp(prefix="xrh-scale-png-"))
    work = [(path, out / f"{path.stem}.png") for path in sources]
    image_batches = batches_of(work)

    def function_of(name: str):
        if name == "headers":
            return read_files, header_batches, read_batch

        def harmonize_batch(batch):
            return apply_batch(Harmonization("cdf", params), batch)

        return harmonize_batch, image_batches, process_batch

    @flow(name="scale benchmark")
    def timed(name: str) -> float:
        function, batches, batch_task = function_of(name)
        start = time.perf_counter()
        for _ in mapper_of(batch_task)(function, batches):
            pass
        return time.perf_counter() - start

    with prefect_api():
        figures: dict[tuple[str, int], float] = {}
        for workers in (1, 2):
            runner = DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
            for name in ("headers", "harmonize"):
                started = time.perf_counter()
                figures[(name, workers)] = timed.with_options(task_runner=runner)(name)
                seconds = figures[(name, workers)]
                overhead = time.perf_counter() - started - seconds
                print(f"{name:9} {workers} worker(s): {seconds:7.2f} s (+{overhead:.1f} s flow and cluster start)")
        # The same batches on plain Dask (no Prefect task around each): what the tasks' bookkeeping costs.
        from distributed import Client, LocalCluster

        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1) as cluster, Client(cluster) as client:
                client.submit(len, [0]).result()
                for name in ("headers", "harmonize"):
                    function, batches, _ = function_of(name)
                    start = time.perf_counter()
                    client.gather(client.map(function, batches, pure=False))
                    figures[(f"{name} (plain Dask)", workers)] = time.perf_counter() - start
    print()
    counts = {
        "headers": (len(entries), "headers"),
        "harmonize": (len(sources), "images"),
        "headers (plain Dask)": (len(entries), "headers"),
        "harmonize (plain Dask)": (len(sources), "images"),
    }
    for name, (count, unit) in counts.items():
        one, two = figures[(name, 1)], figures[(name, 2)]
        print(
            f"{name:22} 1 worker {count / one:8.1f} {unit}/s, 2 workers {count / two:8.1f} {unit}/s: "
            f"speed-up {one / two:.2f}x"
        )
    print(f"cores: {os.cpu_count()}; images {np.asarray(load_values(sources[0])).shape} px")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
