"""How much each physical factor of the stand-in changes the image: the decomposition behind the project's hypothesis.

Run: .venv/bin/python benchmarks/physics.py [--patients 8] [--image-size 1024] [--size 512]

Each patient (a phantom with a lung nodule) is rendered as D110 takes a PA, then again with one factor changed at a
time: the beam (90 kVp with the portable unit's filtration; 120 kVp with S120's), the detector (S120's CsI panel
instead of the a-Se one), the grid (removed), the dose (half the mAs) and, for scale, the vendor processing (S120's
chain). The grid of pixels is D110's in every variant, so images align pixel for pixel. Printed per factor, as the
mean over patients with a 95% interval (t distribution):

- RMS change of the noise-free analysis image (``--size`` pixels, [0, 1] after the percentile window);
- the same in the powered benchmark's analysis image (``harmonize.config.BenchConfig``: 64 px of a centred 256 mm
  field, rank-equalized: what its classifiers see), and the share of that change a bone map explains: the change
  regressed on the image's bone component (D110's image less that of the same phantom with its bone replaced by soft
  tissue), ``1 - |d - a b|^2 / |d|^2``. Near 1, the factor changes how bright the bones are against soft tissue
  (energy-dependent contrast, which no map of intensities or frequencies matches without separating bone from soft
  tissue); near 0, something else;
- bone contrast in the log signal before processing: over the ribs that cross the lungs, how much the bone lowers the
  log signal against the same phantom with its bone replaced by soft tissue, and its relative change: the energy
  dependence the hypothesis is about. The monoenergetic expectation from NIST attenuation (xraylib) at each spectrum's
  mean energy is printed beside it as a physics cross-check (beam hardening makes the real change smaller);
- nodule conspicuity in the presented image (native pixels, after the vendor's processing): contrast-to-noise ratio of
  the nodule against a ring round it, the noise measured as the difference between the noisy and the noise-free
  renderings, and its ratio to D110's;
- ``data/bench/physics/factors.png``: for the first patient, the benchmark's analysis image, its bone component, and
  what each factor changes in it, each panel on its own colour scale;
- the detectors' MTF at 0.5, 1, 2 and 2.5 cycles per mm beside approximate values read from Samei and Flynn, Med. Phys.
  30 (2003) (a-Se direct and CsI indirect panels).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harmonize.config import BenchConfig  # noqa: E402
from ingest.images import Preprocessing, analysis_image  # noqa: E402
from simulate.attenuation import linear_attenuation  # noqa: E402
from simulate.detector import Technique, acquire, unattenuated_signal  # noqa: E402
from simulate.phantom import Findings, Grid, project, random_anatomy  # noqa: E402
from simulate.processing import present, presented_values  # noqa: E402
from simulate.profiles import load_profiles  # noqa: E402
from simulate.render import image_geometry  # noqa: E402
from simulate.spectra import mean_energy  # noqa: E402

# Approximate presampled MTF read from the published curves (Samei and Flynn 2003, their figure of MTFs): a-Se direct
# about 0.97, 0.92, 0.8, 0.72 and CsI indirect about 0.85, 0.63, 0.35, 0.26 at 0.5, 1, 2 and 2.5 cycles/mm.
PUBLISHED_MTF = {"a-Se": (0.97, 0.92, 0.80, 0.72), "CsI": (0.85, 0.63, 0.35, 0.26)}
MTF_FREQUENCIES = (0.5, 1.0, 2.0, 2.5)


D110_AS_TAKEN = "D110 as taken (110 kVp)"
FIGURE = Path("data/bench/physics/factors.png")


def variants(profiles):
    """(name, profile used for the detector/grid/SID/processing, kVp, filtration, mAs factor) of each factor."""
    d110, s120, d90 = profiles["D110"], profiles["S120"], profiles["D90"]
    return [
        (D110_AS_TAKEN, d110, 110.0, d110.filtration_mm_al, 1.0),
        ("beam: 90 kVp, 2.5 mm Al", d110, 90.0, d90.filtration_mm_al, 1.0),
        ("beam: 120 kVp, 3.5 mm Al", d110, 120.0, s120.filtration_mm_al, 1.0),
        ("detector: CsI (S120's)", replace(d110, detector=s120.detector), 110.0, d110.filtration_mm_al, 1.0),
        ("no grid", replace(d110, grid=False), 110.0, d110.filtration_mm_al, 1.0),
        ("dose: half the mAs", d110, 110.0, d110.filtration_mm_al, 0.5),
        ("processing: S120's chain", replace(d110, processing=s120.processing), 110.0, d110.filtration_mm_al, 1.0),
    ]


def render_variant(maps, boneless, profile, kvp, filtration, mas, spacing_mm, field, seed):
    """(the bone's share of the noise-free log signal, presented image without noise, presented image with noise)."""
    technique = Technique(kvp, mas, filtration, profile.source_to_image_cm, profile.grid)
    direct = unattenuated_signal(technique, profile.detector, spacing_mm / 10.0)

    def raw(of, noise: bool) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return acquire(of, technique, profile.detector, spacing_mm / 10.0, rng, field_mask=field, noise=noise)

    clean = raw(maps, False)
    bone_signal = np.log(np.clip(raw(boneless, False), 1e-3, None)) - np.log(np.clip(clean, 1e-3, None))
    presented = [
        presented_values(present(image, profile.processing, spacing_mm, field, direct), profile.processing)
        for image in (clean, raw(maps, True))
    ]
    return bone_signal, presented[0], presented[1]


def interval(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return "no change"
    mean = values.mean()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0
    return f"{mean:7.3f} ({mean - half:6.3f} to {mean + half:6.3f})"


def bone_share(change: np.ndarray, bone: np.ndarray) -> float:
    """The share of ``change``'s energy that a multiple of ``bone`` explains (least squares); nan for no change."""
    energy = float(change @ change)
    if energy < 1e-12 * change.size:  # no change (the noise-free dose variant)
        return float("nan")
    return float((change @ bone) ** 2 / max(float(bone @ bone), 1e-30) / energy)


def expected_bone_contrast(kvp: float, filtration: float) -> float:
    """mu_bone - mu_soft (1/cm) at the spectrum's mean energy: the monoenergetic contrast of 1 cm of bone."""
    energy = np.array([mean_energy(kvp, filtration)])
    return float(linear_attenuation("bone", energy)[0] - linear_attenuation("soft_tissue", energy)[0])


def write_factor_figure(image: np.ndarray, bone: np.ndarray, changes: dict[str, np.ndarray], size: int) -> Path:
    """The analysis image, its bone component and each factor's change of it (each on its own diverging scale, with
    the RMS in its title), as a PNG; a factor that changes nothing (the noise-free dose) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"bone component\n(D110 less its boneless twin)": bone}
    panels |= {f"change:\n{name}": change for name, change in changes.items() if np.abs(change).max() > 1e-3}
    columns = (len(panels) + 2) // 2
    figure, axes = plt.subplots(2, columns, figsize=(3.3 * columns, 6.6), constrained_layout=True)
    axes = axes.ravel()
    axes[0].imshow(image.reshape(size, size), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("analysis image, D110\n(rank-equalized, 0 to 1)", fontsize=8)
    for axis, (title, values) in zip(axes[1:], panels.items(), strict=False):
        limit = float(np.abs(values).max())
        shown = axis.imshow(values.reshape(size, size), cmap="RdBu_r", vmin=-limit, vmax=limit)
        rms = float(np.sqrt(np.mean(values**2)))
        axis.set_title(f"{title} (RMS {rms:.3f})", fontsize=8)
        bar = figure.colorbar(shown, ax=axis, shrink=0.75)
        bar.set_label("analysis value (red: brighter)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    for axis in axes[len(panels) + 1 :]:
        axis.set_axis_off()
    for axis in axes[: len(panels) + 1]:
        axis.set_xlabel(f"column (pixels of {BenchConfig.field_mm / size:g} mm)", fontsize=7)
        axis.set_ylabel("row (pixels)", fontsize=7)
        axis.tick_params(labelsize=6)
    figure.suptitle(
        "What each physical factor changes in the powered benchmark's analysis image\n"
        "(one phantom, noise-free, each factor changed alone from D110; each panel on its own scale)",
        fontsize=10,
    )
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(FIGURE, dpi=110)
    plt.close(figure)
    return FIGURE


def measure(patients: int, image_size: int, size: int) -> None:
    profiles = load_profiles()
    d110 = profiles["D110"]
    rows, cols, spacing_mm = image_geometry(d110, False, image_size)
    grid = Grid(rows, cols, spacing_mm / 10.0)
    preprocessing = Preprocessing(size=size)
    bench_preprocessing = BenchConfig().preprocessing()
    results: dict[str, dict[str, list[float]]] = {}
    changes: dict[str, np.ndarray] = {}
    for patient in range(patients):
        rng = np.random.default_rng(1000 + patient)
        anatomy = random_anatomy(rng, "M" if patient % 2 else "F")
        findings = Findings(present=frozenset({"lung_lesion"}), side=1 if patient % 2 else -1, severity=0.6)
        with_nodule = project(anatomy, findings, grid, view="PA", source_to_image_cm=d110.source_to_image_cm)
        without = project(anatomy, Findings(), grid, view="PA", source_to_image_cm=d110.source_to_image_cm)
        nodule = (without.lung - with_nodule.lung) > 0.3
        field = np.ones((rows, cols), dtype=bool)
        ring = ndimage.binary_dilation(nodule, iterations=max(2, int(0.02 * rows))) & ~ndimage.binary_dilation(
            nodule, iterations=2
        )
        ribs = (with_nodule.bone > 0.15) & (with_nodule.lung > 8.0)  # rib over lung
        boneless = with_nodule.without_bone()
        mas = 3.3
        reference = None
        d110_boneless = render_variant(
            boneless, boneless, d110, 110.0, d110.filtration_mm_al, mas, spacing_mm, field, seed=patient
        )[1]
        for name, profile, kvp, filtration, mas_factor in variants(profiles):
            bone_signal, clean, noisy = render_variant(
                with_nodule, boneless, profile, kvp, filtration, mas * mas_factor, spacing_mm, field, seed=patient
            )
            clean_image = analysis_image(clean, preprocessing)
            bench_image = analysis_image(clean, bench_preprocessing, (spacing_mm, spacing_mm)).ravel()
            # Conspicuity in the presented image: the nodule's mean against its ring, over the noise in the ring.
            # A ratio: the presented values' scale and offset cancel.
            noise_sd = float(np.std((noisy - clean)[ring]))
            cnr = abs(float(clean[nodule].mean() - clean[ring].mean())) / max(noise_sd, 1e-9)
            contrast = float(bone_signal[ribs].mean())
            row = results.setdefault(
                name,
                {
                    "rms": [],
                    "bench_rms": [],
                    "bone_share": [],
                    "contrast": [],
                    "contrast_change": [],
                    "cnr": [],
                    "cnr_ratio": [],
                },
            )
            if reference is None:
                reference = (clean_image, contrast, cnr, bench_image)
                boneless_image = analysis_image(d110_boneless, bench_preprocessing, (spacing_mm, spacing_mm))
                bench_bone = bench_image - boneless_image.ravel()
            change = bench_image - reference[3]
            row["rms"].append(float(np.sqrt(np.mean((clean_image - reference[0]) ** 2))))
            row["bench_rms"].append(float(np.sqrt(np.mean(change**2))))
            row["bone_share"].append(bone_share(change, bench_bone))
            row["contrast"].append(contrast)
            row["contrast_change"].append(contrast / reference[1] - 1.0)
            row["cnr"].append(cnr)
            row["cnr_ratio"].append(cnr / reference[2])
            if patient == 0 and name != D110_AS_TAKEN:
                changes[name] = change
        if patient == 0:
            figure = write_factor_figure(reference[3], bench_bone, changes, bench_preprocessing.size)
            print(f"figure: {figure}", file=sys.stderr)
        print(f"patient {patient + 1}/{patients} rendered", file=sys.stderr)
    print(
        f"D110 PA geometry at {rows}x{cols} ({spacing_mm:.3f} mm), analysis images of {size} px; {patients} patients; "
        "mean (95% interval)"
    )
    header = (
        "factor changed",
        "analysis RMS change",
        "bench-image RMS change",
        "share a bone map explains",
        "bone contrast (log)",
        "relative change",
        "nodule CNR",
        "CNR / D110's",
    )
    print(f"{header[0]:28s}" + "".join(f"{h:>30s}" for h in header[1:]))
    for name, row in results.items():
        cells = [interval(row[key]) for key in row]
        print(f"{name:28s}" + "".join(f"{cell:>30s}" for cell in cells))
    base = expected_bone_contrast(110.0, d110.filtration_mm_al)
    print("monoenergetic expectation of the bone contrast's relative change (mean energy, NIST attenuation):")
    for kvp, filtration in ((90.0, profiles["D90"].filtration_mm_al), (120.0, profiles["S120"].filtration_mm_al)):
        print(f"  {kvp:.0f} kVp, {filtration} mm Al: {expected_bone_contrast(kvp, filtration) / base - 1:+.3f}")


def print_mtf() -> None:
    profiles = load_profiles()
    print("detector MTF of the conversion stage (cycles/mm: " + ", ".join(f"{f}" for f in MTF_FREQUENCIES) + ")")
    for name in ("D110", "S120", "HP"):
        detector = profiles[name].detector
        ours = ", ".join(f"{value:.2f}" for value in detector.mtf(np.array(MTF_FREQUENCIES)))
        published = ", ".join(f"{value:.2f}" for value in PUBLISHED_MTF[detector.layer])
        print(f"  {name} ({detector.layer}, {detector.spread} {detector.blur_mm} mm): {ours}   published: {published}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8, help="phantoms (default 8)")
    parser.add_argument("--image-size", type=int, default=1024, help="rendered longer side (default 1024)")
    parser.add_argument("--size", type=int, default=512, help="analysis image size (default 512)")
    args = parser.parse_args()
    print_mtf()
    measure(args.patients, args.image_size, args.size)


if __name__ == "__main__":
    main()
