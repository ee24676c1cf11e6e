"""Start-up of an `xrh` command: wall time and peak memory of `xrh settings` against importing torch alone (what every
command paid before the command line stopped importing the training code).

Run: .venv/bin/python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def measure(command: list[str], repeats: int) -> tuple[float, float]:
    """Median wall seconds and peak resident MiB of ``command`` over ``repeats`` runs (GNU time reports the peak)."""
    seconds, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=True)
        seconds.append(time.perf_counter() - start)
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(seconds), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ours = measure([str(BIN / "xrh"), "settings"], args.repeats)
    baseline = measure([sys.executable, "-c", "import torch"], args.repeats)
    print(f"`xrh settings`: {ours[0]:.2f} s, peak {ours[1]:.0f} MiB (median of {args.repeats})")
    print(f"baseline `python -c 'import torch'`: {baseline[0]:.2f} s, peak {baseline[1]:.0f} MiB")
    print(f"ratio: {baseline[0] / ours[0]:.1f}x faster, {baseline[1] / ours[1]:.1f}x less memory than the torch import")


if __name__ == "__main__":
    main()
