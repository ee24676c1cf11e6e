"""Time and peak memory of the feature statistics (what `xrh features` computes from the features array) as the
number of images grows, beside the exact MMD they replaced.

Run: .venv/bin/python benchmarks/feature_statistics.py [--sizes 10000 40000 377110]

Each size runs in its own process (so its peak RSS is its own): synthetic 512-dimensional float32 features of two
scanner groups (60% and 40% of the images, the second shifted by 0.2 in 32 dimensions), about 5.8 images per patient
as in MIMIC-CXR (377,110 images of 65,379 patients), sex and race columns, and random scores, analysed by
`models_ml.feature_statistics.feature_analysis` with 200 permutations. "data" is the RSS once the inputs exist;
"peak" the process's maximum. For contrast, the exact MMD of before (full pooled kernel, one submatrix copy per
permutation) and the new `mmd_rbf` run on 4,000 images (2,000 per group, 200 permutations). Target: the 377,110 images
in a few minutes, with memory a small multiple of the features array; the whole run in under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models_ml.feature_statistics import _squared_distances, feature_analysis, mmd_rbf  # noqa: E402

SIZES = (10_000, 40_000, 377_110)
DIMENSIONS = 512
IMAGES_PER_PATIENT = 377_110 / 65_379
PERMUTATIONS = 200
CONTRAST_IMAGES = 4000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def synthetic(size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    scanner = np.where(rng.random(size) < 0.6, "D110", "S120")
    features = rng.standard_normal((size, DIMENSIONS), dtype=np.float32)
    features[scanner == "S120", :32] += 0.2
    return {
        "features": features,
        "scores": rng.random(size),
        "scanner": scanner,
        "subjects": rng.integers(0, max(5, int(size / IMAGES_PER_PATIENT)), size),
        "demographics": {
            "sex": rng.choice(["F", "M"], size),
            "race": rng.choice(["WHITE", "BLACK", "ASIAN", "HISPANIC", "None"], size, p=[0.6, 0.15, 0.05, 0.1, 0.1]),
        },
    }


def exact_mmd_before(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """The MMD of before this change, verbatim: the full pooled kernel and its median, a copy per permutation."""
    pooled = np.concatenate([x, y]).astype(np.float64)
    distances = _squared_distances(pooled, pooled)
    median = np.median(distances[np.triu_indices(len(pooled), k=1)])
    kernel = np.exp(-distances / max(median, 1e-12))
    n = len(x)

    def statistic(index: np.ndarray) -> float:
        first, second = index[:n], index[n:]
        kxx = kernel[np.ix_(first, first)]
        kyy = kernel[np.ix_(second, second)]
        kxy = kernel[np.ix_(first, second)]
        m = len(second)
        return float(
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean()
        )

    observed = statistic(np.arange(len(pooled)))
    rng = np.random.default_rng(seed)
    exceed = sum(statistic(rng.permutation(len(pooled))) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1)


def measure_size(size: int) -> dict:
    data = synthetic(size)
    data_rss = current_rss_mib()
    start = time.perf_counter()
    rows = feature_analysis(**data, permutations=PERMUTATIONS)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "data_mib": data_rss, "peak_mib": peak_rss_mib(), "rows": len(rows)}


def measure_contrast(which: str) -> dict:
    rng = np.random.default_rng(1)
    half = CONTRAST_IMAGES // 2
    x = rng.standard_normal((half, DIMENSIONS), dtype=np.float32)
    y = rng.standard_normal((half, DIMENSIONS), dtype=np.float32)
    y[:, :32] += 0.2
    start = time.perf_counter()
    if which == "before":
        value, p_value = exact_mmd_before(x, y, permutations=PERMUTATIONS)
        standard_error = float("nan")
    else:
        result = mmd_rbf(x, y, permutations=PERMUTATIONS)
        value, p_value, standard_error = result.value, result.p_value, result.standard_error
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": peak_rss_mib(), "mmd": value, "se": standard_error, "p": p_value}


def child(*arguments: str) -> dict:
    """One measurement in a fresh process, so that its peak RSS is its own."""
    done = subprocess.run([sys.executable, __file__, *arguments], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--contrast", choices=["before", "after"], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.size or arguments.contrast:
        measured = measure_size(arguments.size) if arguments.size else measure_contrast(arguments.contrast)
        print(json.dumps(measured))
        return
    print(f"feature_analysis: {DIMENSIONS}-dimensional float32 features, two groups, {PERMUTATIONS} permutations")
    for size in arguments.sizes:
        m = child("--size", str(size))
        features_mib = size * DIMENSIONS * 4 / 2**20
        print(
            f"{size:>9,} images  {m['seconds']:7.1f} s  peak RSS {m['peak_mib']:6.0f} MiB"
            f"  (inputs {m['data_mib']:.0f} MiB, of which features {features_mib:.0f} MiB; {m['rows']} rows)",
            flush=True,
        )
    print(f"MMD on {CONTRAST_IMAGES:,} images ({CONTRAST_IMAGES // 2:,} per group), {PERMUTATIONS} permutations")
    results = {}
    for which, name in (("after", "mmd_rbf, capped"), ("before", "exact, before")):
        m = results[which] = child("--contrast", which)
        print(
            f"  {name:<16} {m['seconds']:7.2f} s  peak RSS {m['peak_mib']:6.0f} MiB"
            f"  MMD^2 {m['mmd']:.5f} (SE {m['se']:.5f}), p {m['p']:.3f}",
            flush=True,
        )
    print(f"  exact before / capped after: {results['before']['seconds'] / results['after']['seconds']:.0f}x")


if __name__ == "__main__":
    main()
