"""Simulator speed: images per second at 512 and 2048 pixels, and the time to write the demo data set.

Run: .venv/bin/python benchmarks/simulate.py [--demo-patients 500] [--skip-demo]

Per-image figures are one process rendering and encoding (phantom, spectra, detector, processing, DICOM bytes), over a
mix of all scanner profiles and views; "size" is the longer image side (the units' matrices are not square). The demo
figure is `xrh simulate --patients 500 --image-size 320` end to end with one worker per CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate.dicom_writer import dx_bytes  # noqa: E402
from simulate.generate import _image_tasks, simulate_dataset  # noqa: E402
from simulate.population import build_population  # noqa: E402
from simulate.profiles import load_profiles  # noqa: E402
from simulate.render import render  # noqa: E402


def per_image_rate(size: int, count: int) -> tuple[float, str]:
    profiles = load_profiles()
    population = build_population(max(4, count), profiles, np.random.default_rng(11))
    tasks = _image_tasks(population, 11)[:count]
    render(*tasks[0][:1], profiles[tasks[0][1]], size)  # spectra cache and imports outside the timing
    shapes = set()
    start = time.perf_counter()
    for task, profile in tasks:
        pixels, header = render(task, profiles[profile], size)
        dx_bytes(header, pixels)
        shapes.add(pixels.shape)
    elapsed = time.perf_counter() - start
    return len(tasks) / elapsed, ", ".join(f"{r}x{c}" for r, c in sorted(shapes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-patients", type=int, default=500)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs")
    for size, count in ((512, 40), (2048, 6)):
        rate, shapes = per_image_rate(size, count)
        print(f"render+encode, one process, longer side {size:4d}: {rate:6.2f} images/s  (matrices {shapes})")
    if not args.skip_demo:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            summary = simulate_dataset(Path(folder), patients=args.demo_patients, seed=0, image_size=320)
            elapsed = time.perf_counter() - start
        print(
            f"demo data set: {summary.patients} patients, {summary.studies} studies, {summary.images} images at 320 px "
            f"in {elapsed:.1f} s ({summary.images / elapsed:.1f} images/s, {os.cpu_count()} workers; target < 120 s)"
        )
    peak_mib = (
        max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        / 1024
    )
    print(f"peak resident memory of one process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
