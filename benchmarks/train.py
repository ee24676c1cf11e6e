"""Training throughput with the real data pipeline against the same batches held in memory, and peak memory.

Run: .venv/bin/python benchmarks/train.py [--work data/bench/train]

The data set is a simulated release (150 patients, 320-pixel images) taken through simulate, ingest, dbt build and
split, as `make demo` does. "Pipeline" is what `xrh train` runs: a DataLoader over the preprocessed-image cache with the
default geometric augmentation. "In memory" trains the same model on the same batches, stacked beforehand (and
augmented beforehand, so only the model's work is timed). Target: the pipeline costs at most 10%.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ingest.images import ImageCache, Preprocessing  # noqa: E402
from models_ml.architectures import build_classifier  # noqa: E402
from models_ml.dataset import CachedImages, cache_images, load_cohort  # noqa: E402
from models_ml.train import augmentation  # noqa: E402
from xrh.batches import local_processes  # noqa: E402
from xrh.settings import load_settings  # noqa: E402

COHORT = "scanner_d110_vs_s120"


def prepare(work: Path) -> None:
    if (work / "prepared").exists():
        return
    environment = {**os.environ, "XRH_DATA_ROOT": str(work)}
    for command in (
        ["simulate", "--patients", "150", "--image-size", "320"],
        ["ingest", "all"],
        ["build"],
        ["split", "--cohort", COHORT],
    ):
        subprocess.run(
            [str(ROOT / ".venv/bin/xrh"), *command],
            env=environment,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    (work / "prepared").write_text("ok")


def measure(architecture: str, size: int, steps: int, batch_size: int, work: Path) -> tuple[float, float]:
    settings = load_settings(environ={"XRH_DATA_ROOT": str(work)})
    with sqlite3.connect(settings.warehouse) as conn:
        data = load_cohort(conn, settings.mimic_cxr, COHORT)
    with local_processes(2) as map_batches:
        cache = cache_images(data.examples, ImageCache(settings.cache_dir, Preprocessing(size=size)), map_batches)
    dataset = CachedImages(data.split("train"), cache, augmentation("geometric"))
    loss_fn = nn.CrossEntropyLoss()

    def run(batches) -> float:
        torch.manual_seed(0)
        model = build_classifier(architecture, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        images_done, start = 0, None
        for step, (images, labels) in enumerate(batches):
            if step == 1:
                start, images_done = time.perf_counter(), 0  # the first step warms up allocators
            optimizer.zero_grad()
            loss_fn(model(images), labels).backward()
            optimizer.step()
            images_done += len(labels)
            if step == steps:
                break
        return images_done / (time.perf_counter() - start)

    def pipeline():
        while True:
            yield from DataLoader(dataset, batch_size=batch_size, shuffle=True)

    held = []
    for images, labels in pipeline():
        held.append((images.clone(), labels.clone()))
        if len(held) > steps:
            break
    return run(pipeline()), run(iter(held))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/bench/train")
    args = parser.parse_args()
    work = (ROOT / args.work).resolve()
    prepare(work)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for architecture, size, steps in (("small_cnn", 128, 30), ("resnet18", 224, 8)):
        pipeline, memory = measure(architecture, size, steps, 32, work)
        print(
            f"{architecture} at {size} px, batch 32: pipeline {pipeline:6.1f} images/s, in memory {memory:6.1f} "
            f"images/s, pipeline cost {100 * (1 - pipeline / memory):+.1f}% (target at most 10%)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
