"""Per-image time of each harmonization method on 2048x2048 uint16 images, beside the baselines, and peak memory.

Run: .venv/bin/python benchmarks/harmonize.py [--size 2048] [--repeats 15] [--threads 1]

Baselines measured in the same run: `skimage.exposure.match_histograms` on the same integer images, one
`scipy.fft` forward + inverse transform (``rfft2`` + ``irfft2``, float32, on as many workers as the methods' threads:
the named baseline of every "one FFT round trip" ratio), the same forward transform with the two-pass inverse the
Fourier methods use (``harmonize.fourier.inverse_spectrum``, faster than ``irfft2``: part of the methods' ratios comes
from it), and one memory copy.
Targets: exact distribution matching at least 3x faster than match_histograms, the subsampled-CDF option at least 4x;
each Fourier method at most 1.5x one FFT round trip; plain min/max under 10 ms; percentile and z-score no slower than
distribution matching. The images are simulated radiographs (`simulate`, native matrices cropped square) in
presentation values.

The acquisition-aware chain (``physics``: geometry, tone, transfer, tone) and each of its stages alone, with
parameters fitted on the rendered images taken as two scanners of different magnification: target at most 3x one FFT
round trip; with energy matching (``energy``, ``physics_energy``), on an untrained bone model of the same size (what it
costs does not depend on its weights), with the second scanner's bone contrast set 1.2x the reference's so that every
image is matched.

Also measured: the FFT round trip of a 3050x2539 image (a MIMIC-CXR size; 2539 is prime) as it is and padded to fast
lengths as the Fourier methods pad it, and the peak traced memory (tracemalloc) of fitting FDA on 8 and on 32
streamed 1024x1024 images, which should be the same.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scipy import fft  # noqa: E402
from skimage.exposure import match_histograms  # noqa: E402

from harmonize import distribution, fourier, intensity, scanners  # noqa: E402
from harmonize.acquisition import Acquisition  # noqa: E402
from harmonize.bone import train_bone_model  # noqa: E402
from harmonize.common import set_threads, threads  # noqa: E402
from harmonize.config import BenchConfig  # noqa: E402
from harmonize.fitting import PNG_COMPRESS_LEVEL, png16_bytes  # noqa: E402
from harmonize.methods import IMAGE_METHODS  # noqa: E402
from simulate.generate import _image_tasks, _profiles  # noqa: E402
from simulate.population import build_population  # noqa: E402
from simulate.processing import presented_values  # noqa: E402
from simulate.render import render  # noqa: E402

MIMIC_SHAPE = (3050, 2539)  # rows x columns of many MIMIC-CXR images; 2539 is prime
FIT_SIZE = 1024
BENCH_DOMAIN_SHAPE = (BenchConfig.size, BenchConfig.size)


def images(count: int, size: int) -> list[np.ndarray]:
    """Simulated ``size``-pixel radiographs as uint16 presentation values (MONOCHROME1 inverted), cropped square."""
    profiles = _profiles()
    tasks = _image_tasks(build_population(12, profiles, np.random.default_rng(3)), 3)
    out = []
    for task, profile in tasks:
        if task.projection == "LATERAL":
            continue
        stored, _ = render(task, profiles[profile], size)
        pixels = presented_values(stored, profiles[profile].processing).astype(np.uint16)  # integers: exact
        square = np.zeros((size, size), dtype=np.uint16)
        square[: pixels.shape[0], : pixels.shape[1]] = pixels[:size, :size]
        out.append(square)
        if len(out) == count:
            return out
    return out


def per_image_ms(function, image: np.ndarray, repeats: int) -> float:
    function(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(image)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.min(times))  # best of the repeats: the least disturbed run


def fft_round_trip(image: np.ndarray) -> np.ndarray:
    """One scipy.fft forward and inverse transform of the image as it is (float32)."""
    return fft.irfft2(fft.rfft2(image.astype(np.float32), workers=threads()), s=image.shape, workers=threads())


def padded_fft_round_trip(image: np.ndarray) -> np.ndarray:
    """The round trip as the Fourier methods take it: padded to fast lengths (a 2048 x 2048 image is not), rfft2, the
    two-pass inverse (:func:`harmonize.fourier.inverse_spectrum`), cropped back."""
    shape = fourier.padded_shape(image.shape)
    spectrum = fft.rfft2(fourier.pad_for_fft(image), workers=threads())
    return fourier.inverse_spectrum(spectrum, shape)[: image.shape[0], : image.shape[1]]


def scanner_timings(references: list[np.ndarray], source: np.ndarray, repeats: int) -> dict[str, float]:
    """Per-image time of each acquisition-aware method on ``source`` as an image of the second of two scanners (the
    references taken as both, at 1.07 and 1.14 magnification), fitted on the references repeated to the minimum
    count of a fitted scanner."""
    reference = Acquisition("reference scanner", "reference model", 0.2, 1.07)
    other = Acquisition("other scanner", "other model", 0.2, 1.14)
    copies = -(-scanners.MIN_SCANNER_IMAGES // len(references))
    fit_set = [
        (image, acquisition, acquisition is reference)
        for acquisition in (reference, other)
        for image in references * copies
    ]
    bone_model = train_bone_model(
        np.zeros((1, *BENCH_DOMAIN_SHAPE), np.float32),
        np.zeros((1, *BENCH_DOMAIN_SHAPE), np.float32),
        BenchConfig().preprocessing(),
        epochs=0,
    )
    timings = {}
    for method in scanners.SCANNER_METHODS:
        params = scanners.fit(method, lambda: iter(fit_set), bone_model=bone_model)
        for stage, name in enumerate(scanners.SCANNER_METHODS[method]):
            if name == "energy":  # the second scanner's bone contrast 1.2x the reference's: every image is matched
                energies = params[f"stage{stage}.bone_energy"]
                energies[params["scanners"].index(other.scanner)] = (
                    1.44 * energies[params["scanners"].index(reference.scanner)]
                )
        timings[method] = per_image_ms(lambda im, p=params: scanners.apply(im, other, p), source, repeats)
    return timings


def fda_fit_peak_mib(count: int) -> float:
    """Peak traced memory of fitting FDA on ``count`` 1024x1024 uint16 images read one at a time from a generator."""
    streamed = (
        np.random.default_rng(seed).integers(0, 4096, (FIT_SIZE, FIT_SIZE), dtype=np.uint16) for seed in range(count)
    )
    tracemalloc.start()
    try:
        IMAGE_METHODS["fda"].fit(streamed)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-image time of each harmonization method, beside skimage, FFT and memory-copy baselines; "
        "the FFT round trip of a MIMIC-size image with and without padding to fast lengths; the peak memory of a "
        "streamed FDA fit."
    )
    parser.add_argument("--size", type=int, default=2048, help="side of the simulated square images (default 2048)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per measurement, best kept (default 15)")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per image for histograms, lookups and FFTs (default 1)"
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    set_threads(args.threads)
    size, repeats = args.size, args.repeats
    rendered = images(4, size)
    references, source = rendered[:3], rendered[3]
    params = {name: method.fit(iter(references)) for name, method in IMAGE_METHODS.items()}
    quantile_params, landmark_params, intensity_params = params["cdf"], params["nyul"], params["minmax"]
    fda_params, band_params = params["fda"], params["bands"]
    fft_name = f"scipy.fft rfft2 + irfft2 (float32, {threads()} workers)"
    baselines = {
        "skimage match_histograms (uint16)": per_image_ms(
            lambda im: match_histograms(im, references[0]), source, repeats
        ),
        fft_name: per_image_ms(fft_round_trip, source, repeats),
        "rfft2 + the methods' two-pass inverse": per_image_ms(padded_fft_round_trip, source, repeats),
        "memory copy": per_image_ms(lambda im: im.copy(), source, repeats),
    }
    methods = {
        "min/max": lambda im: intensity.apply_minmax(im, intensity_params),
        "percentile window": lambda im: intensity.apply_percentile_window(im, intensity_params),
        "z-score": lambda im: intensity.apply_zscore(im, intensity_params),
        "CDF matching, exact": lambda im: distribution.apply_cdf_matching(im, quantile_params),
        "CDF matching, subsampled CDF": lambda im: distribution.apply_cdf_matching(im, quantile_params, step=2),
        "Nyul-Udupa landmarks": lambda im: distribution.apply_landmarks(im, landmark_params),
        "FDA (beta 0.01)": lambda im: fourier.apply_fda(im, fda_params, beta=0.01),
        "band-energy equalization": lambda im: fourier.apply_band_equalization(im, band_params),
    }
    print(f"{size}x{size} uint16, best of {repeats} runs, one image at a time, {threads()} thread(s)")
    for name, ms in baselines.items():
        print(f"  baseline {name:46} {ms:7.1f} ms")
    timings = {name: per_image_ms(function, source, repeats) for name, function in methods.items()}
    for name, ms in timings.items():
        print(f"  {name:55} {ms:7.1f} ms")
    skimage_ms = baselines["skimage match_histograms (uint16)"]
    fft_ms = baselines[fft_name]
    exact = timings["CDF matching, exact"]
    print("targets:")
    print(f"  exact CDF matching vs match_histograms: {skimage_ms / exact:.1f}x faster (target >= 3x)")
    print(
        f"  subsampled CDF vs match_histograms: {skimage_ms / timings['CDF matching, subsampled CDF']:.1f}x faster "
        f"(target >= 4x; the memory copy, the limit, is {skimage_ms / baselines['memory copy']:.0f}x)"
    )
    for name in ("FDA (beta 0.01)", "band-energy equalization"):
        print(f"  {name}: {timings[name] / fft_ms:.2f}x one FFT round trip (target <= 1.5x)")
    print(f"  min/max: {timings['min/max']:.1f} ms (target < 10 ms)")
    for name, ms in scanner_timings(references, source, repeats).items():
        target = " (target <= 3x)" if name in ("physics", "physics_energy") else ""
        print(f"  acquisition-aware {name}: {ms:.1f} ms, {ms / fft_ms:.2f}x one FFT round trip{target}")
    for name in ("percentile window", "z-score"):
        print(f"  {name}: {timings[name] / exact:.2f}x exact distribution matching (target <= 1x)")
    harmonized = distribution.apply_cdf_matching(source, quantile_params)
    default_png = per_image_ms(lambda im: png16_bytes(im, compress_level=6), harmonized, repeats)
    ours_png = per_image_ms(png16_bytes, harmonized, repeats)
    size_ratio = len(png16_bytes(harmonized)) / len(png16_bytes(harmonized, compress_level=6))
    print(
        f"  16-bit PNG of a harmonized image: {ours_png:.1f} ms at zlib level {PNG_COMPRESS_LEVEL} against "
        f"{default_png:.1f} ms at PIL's default level 6: {default_png / ours_png:.1f}x faster, files {size_ratio:.2f}x"
    )
    mimic = np.random.default_rng(5).integers(0, 4096, MIMIC_SHAPE, dtype=np.uint16)
    own_ms = per_image_ms(fft_round_trip, mimic, repeats)
    padded_ms = per_image_ms(padded_fft_round_trip, mimic, repeats)
    rows, cols = fourier.padded_shape(MIMIC_SHAPE)
    print(f"FFT round trip of a {MIMIC_SHAPE[0]}x{MIMIC_SHAPE[1]} image (float32, {threads()} workers):")
    print(f"  own shape {own_ms:.1f} ms; padded to {rows}x{cols} and cropped {padded_ms:.1f} ms")
    print(f"  padding to fast lengths: {own_ms / padded_ms:.1f}x faster")
    fda_ms = per_image_ms(lambda im: fourier.apply_fda(im, fda_params, beta=0.01), mimic, repeats)
    print(f"  FDA (beta 0.01) on it: {fda_ms:.1f} ms, {fda_ms / padded_ms:.2f}x the padded round trip")
    few, many = 8, 32
    few_mib, many_mib = fda_fit_peak_mib(few), fda_fit_peak_mib(many)
    print(
        f"FDA fit, peak traced memory on {FIT_SIZE}x{FIT_SIZE} images read one at a time: {few} images "
        f"{few_mib:.1f} MiB, {many} images {many_mib:.1f} MiB ({many_mib / few_mib:.2f}x)"
    )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
