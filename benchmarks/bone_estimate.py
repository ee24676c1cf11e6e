"""Can one image's bone component be estimated well enough for energy matching? A learned estimate, measured.

Run: .venv/bin/python benchmarks/bone_estimate.py [--train 320] [--test 400] [--epochs 40] [--seeds 0 1 2]

Energy matching (issue 15, item 3) would bring each image's bone-to-soft-tissue contrast to the reference beam's: add
``(g - 1) b`` to the image, with ``b`` its bone component and ``g`` the ratio of the two beams' bone contrasts. One
projection does not separate bone from soft tissue, so ``b`` must be estimated. This measures how well a small U-Net
(Ronneberger et al., MICCAI 2015), trained from scratch on the stand-in's paired renderings only, estimates it, and how
much of what the beam and detector change it would explain:

- the bench set's phantoms (``simulate.bench``, seed 0: its first ``--train`` training and ``--test`` test phantoms),
  each rendered on D110 (noisy; noise-free; noise-free with its bone replaced by soft tissue) and on S120T (S120's beam
  and CsI detector behind D110's processing; noisy and noise-free), pixel-aligned on D110's 512-pixel matrix, each
  reduced to the powered benchmark's analysis image (``harmonize.config.BenchConfig``: a centred 256 mm field at 64
  pixels of 4 mm, rank-equalized: what its scanner classifiers read, with the processing's global tone taken away,
  as ``benchmarks/physics.py`` measures the share a bone map explains);
- target: the bone component, D110's noise-free analysis image less its boneless twin's; input: the noisy D110
  analysis image (each standardized by its own mean and SD, the target by the same SD);
- printed with 95% bootstrap intervals over test phantoms: the share of the held-out bone component the estimate
  explains (``1 - |b - e|^2 / |b|^2``), and the share of the S120T-D110 change that a multiple of the true bone
  component, of the estimate from D110's image, and of the estimate from S120T's own image explain
  (``1 - |d - a x|^2 / |d|^2``, one ``a`` fitted over all test phantoms: what one gain per scanner could take away;
  optimistic, as the gain is fitted on the images it is scored on); the estimate from S120T's own image is what energy
  matching could use; beside them a linear baseline, the S120T image less its Gaussian blur;
- energy matching as a fit would do it, without pairs: the ratio of S120T's bone contrast to D110's from the energy
  of the estimates on each arm's own training images, and the share of the S120T-D110 difference that S120T less
  ``1 - 1/ratio`` times its estimate removes: in the analysis image, and carried back to S120T's presented values
  (:func:`carried_back`, what a stage of the chain would do) and analysed again;
- whether a classifier follows: the powered benchmark's texture classifier (its CNN, settings and seeds) trained to
  tell D110 from S120T on the training phantoms' analysis images, before and after energy matching (each S120T image
  matched with the same gain; in the analysis image, and carried back), and its balanced accuracy on the test
  phantoms, with the paired difference;
- ``data/bench/bone/bone-estimate.png``: one test phantom's analysis image, its true and estimated bone component,
  and its S120T-D110 difference before and after energy matching; and the estimate on RG1, the real chest radiograph
  that ships offline (by eye only: it has no bone-free twin).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.data import get_testdata_file
from scipy import ndimage
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.physics import bone_share  # noqa: E402
from harmonize.bone import carried_back, estimate_bone, explained_share, train_bone_model  # noqa: E402
from harmonize.config import BenchConfig  # noqa: E402
from ingest.images import analysis_image, presentation_values  # noqa: E402
from simulate.bench import arm_profiles, arm_task, bench_phantoms  # noqa: E402
from simulate.processing import presented_values  # noqa: E402
from simulate.profiles import load_profiles  # noqa: E402
from simulate.render import render  # noqa: E402

FIGURE = Path("data/bench/bone/bone-estimate.png")
# RG1 (a Philips Thoravision selenium-drum CR) writes no pixel spacing; 0.2 mm puts its 1,841 columns at 37 cm, about a
# chest's width: an assumption for a picture, not a measurement.
RG1_SPACING_MM = 0.2
# (name, arm, bone, noise) of each rendering of a phantom
RENDERINGS = (
    ("D110", "D110", True, True),
    ("D110_clean", "D110", True, False),
    ("D110_boneless", "D110", False, False),
    ("S120T", "S120T", True, True),
    ("S120T_clean", "S120T", True, False),
)


# Read once (parsing the YAML takes about 20 ms, a fifth of a rendering); the forked workers inherit them.
PROFILES = load_profiles()


def _presented(phantom, arm: str, bone: bool, noise: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """The phantom's presented values on ``arm``, on D110's 512-pixel matrix, and their pixel spacing."""
    profile, kvp = arm_profiles(PROFILES)[arm]
    stored, header = render(
        arm_task(phantom, arm, profile, kvp), profile, 512, geometry_of=PROFILES["D110"], bone=bone, noise=noise
    )
    return presented_values(stored, profile.processing), (header.pixel_spacing_mm, header.pixel_spacing_mm)


def rg1_analysis_image() -> np.ndarray:
    """The analysis image of RG1, the real chest radiograph that ships offline: its header's PixelSpacing is 0\\0, so
    the field is cut at ``RG1_SPACING_MM``, an assumption."""
    dataset = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    return analysis_image(presentation_values(dataset), BenchConfig().preprocessing(), (RG1_SPACING_MM,) * 2)


def _render_phantom(kept: Path, phantom) -> dict[str, np.ndarray]:
    """Each rendering's analysis image; S120T's noisy presented values are kept in ``kept`` for the carry-back."""
    threadpool_limits(1)
    analysed = {}
    for name, arm, bone, noise in RENDERINGS:
        values, spacing = _presented(phantom, arm, bone, noise)
        if name == "S120T":
            np.savez(kept / f"{phantom.phantom_id}.npz", values=values.astype(np.float32), spacing=spacing)
        analysed[name] = analysis_image(values, BenchConfig().preprocessing(), spacing)
    return analysed


def with_interval(statistic, count: int, seed: int = 0) -> str:
    """``statistic(index)`` over all ``count`` phantoms, with a bootstrap 95% interval over phantoms."""
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, count, count)) for _ in range(1000)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"{statistic(np.arange(count)):.3f} ({low:.3f} to {high:.3f})"


def texture_classifier(
    train_d110: np.ndarray, train_s120t: np.ndarray, test_d110: np.ndarray, test_s120t: np.ndarray, seed: int
) -> np.ndarray:
    """The powered benchmark's scanner CNN (``BenchConfig``, training ``seed``) trained to tell D110 (0) from S120T
    (1), its last fifth of phantoms held out for early stopping; per test phantom, its probabilities of S120T for
    (D110, S120T)."""
    from torch.utils.data import DataLoader, TensorDataset

    from models_ml.train import fit_classifier, forward_all

    def dataset(d110: np.ndarray, s120t: np.ndarray) -> TensorDataset:
        images = torch.from_numpy(np.concatenate([d110, s120t])[:, None].astype(np.float32))
        return TensorDataset(images, torch.tensor([0] * len(d110) + [1] * len(s120t)))

    kept = len(train_d110) * 4 // 5
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        fitted = fit_classifier(
            BenchConfig().train_config(seed),
            2,
            dataset(train_d110[:kept], train_s120t[:kept]),
            dataset(train_d110[kept:], train_s120t[kept:]),
            np.array([0] * kept + [1] * kept),
            device,
            Path(folder) / "texture.pt",
        )
    logits = forward_all(fitted.model, DataLoader(dataset(test_d110, test_s120t), batch_size=64), device)[0]
    probabilities = torch.softmax(logits, dim=1)[:, 1].numpy()
    return np.stack([probabilities[: len(test_d110)], probabilities[len(test_d110) :]], axis=1)


def paired_balanced_accuracy(scores: np.ndarray) -> float:
    """Balanced accuracy of (D110, S120T) probability pairs at 0.5: the mean of the two arms' recalls."""
    return float(((scores[:, 0] < 0.5).mean() + (scores[:, 1] >= 0.5).mean()) / 2)


def write_figure(example: dict[str, np.ndarray], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    change = example["S120T"] - example["D110"]
    rows = [
        [
            ("D110 analysis image\n(a stand-in test phantom)", example["D110"], "gray", None),
            ("bone component: D110 less\nits boneless twin", example["bone"], "RdBu_r", None),
            ("bone component estimated\nfrom the noisy D110 image", example["from_D110"], "RdBu_r", "bone"),
            ("S120T - D110\n(beam and CsI detector)", change, "RdBu_r", None),
            ("S120T energy-matched - D110\n(gain fitted without pairs)", example["matched"] - example["D110"],
             "RdBu_r", "change"),
            ("the same matching carried back\nto S120T's values, analysed - D110", example["carried"] - example["D110"],
             "RdBu_r", "change"),
        ],
        [
            (f"RG1, a real PA chest (Philips CR;\nspacing assumed {RG1_SPACING_MM} mm)", example["RG1"], "gray", None),
            ("RG1's bone component estimated\nby the same U-Net", example["from_RG1"], "RdBu_r", "bone"),
        ],
    ]  # fmt: skip
    scales = {"bone": np.abs(example["bone"]).max(), "change": np.abs(change).max()}
    millimetres = BenchConfig().field_mm / BenchConfig().size
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.2 * columns, 4.0 * len(rows)), squeeze=False)
    for axis in axes.ravel():
        axis.set_visible(False)
    for row_axes, panels in zip(axes, rows, strict=True):
        for axis, (title, image, colours, shared) in zip(row_axes, panels, strict=False):
            axis.set_visible(True)
            if colours == "gray":
                shown = axis.imshow(image, cmap=colours)
            else:
                limit = scales[shared] if shared else np.abs(image).max()
                shown = axis.imshow(image, cmap=colours, vmin=-limit, vmax=limit)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel(f"column ({millimetres:g} mm pixels)", fontsize=8)
            axis.set_ylabel(f"row ({millimetres:g} mm pixels)", fontsize=8)
            figure.colorbar(shown, ax=axis, fraction=0.046, label="equalized value (rank, 0-1)")
    figure.suptitle(
        "Energy matching needs each image's bone component: the truth and a U-Net's estimate, trained on "
        "the stand-in only"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=320)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(BenchConfig.seeds), help="classifier seeds")
    args = parser.parse_args()
    # S120T's full-resolution values wait there for the carry-back (about 1 MB a phantom), removed however it ends.
    with tempfile.TemporaryDirectory(prefix="bone-estimate-") as kept:
        measure(args, Path(kept))


def measure(args: argparse.Namespace, kept: Path) -> None:
    """Render, train, print every figure and write the figure."""
    phantoms = bench_phantoms(2000, 0)
    train = [p for p in phantoms if p.split == "train"][: args.train]
    test = [p for p in phantoms if p.split == "test"][: args.test]
    start = time.perf_counter()
    with get_context("fork").Pool(2) as pool:
        rendered = pool.map(partial(_render_phantom, kept), train + test, chunksize=4)
    stacks = {name: np.stack([r[name] for r in rendered]).astype(np.float32) for name, *_ in RENDERINGS}
    print(f"rendered {len(RENDERINGS) * len(rendered)} images in {time.perf_counter() - start:.0f} s")
    bone = stacks["D110_clean"] - stacks["D110_boneless"]
    training = slice(0, len(train))
    start = time.perf_counter()
    network = train_bone_model(
        stacks["D110"][training], bone[training], BenchConfig().preprocessing(), epochs=args.epochs
    )
    print(f"trained the U-Net on {len(train)} phantoms, {args.epochs} epochs, in {time.perf_counter() - start:.0f} s")
    held_out = slice(len(train), None)
    truth = bone[held_out]
    from_d110 = estimate_bone(network, stacks["D110"][held_out])
    from_s120t = estimate_bone(network, stacks["S120T"][held_out])
    change = stacks["S120T"][held_out] - stacks["D110"][held_out]
    # What a linear filter finds without learning: the image less its Gaussian blur (ribs are 2-4 pixels wide here).
    high_pass = np.stack([image - ndimage.gaussian_filter(image, 1.5) for image in stacks["S120T"][held_out]])
    clean_change = stacks["S120T_clean"][held_out] - stacks["D110_clean"][held_out]
    pairs = {
        "the true bone component": (change, truth),
        "the estimate from the D110 image": (change, from_d110),
        "the estimate from the S120T image": (change, from_s120t),
        "a linear baseline: S120T's high-pass (sigma 1.5)": (change, high_pass),
        "the true bone component, noise-free images": (clean_change, truth),
        "the estimate from S120T, noise-free images": (clean_change, from_s120t),
    }
    count = len(test)
    print(f"\n{count} test phantoms (bootstrap 95% interval over phantoms):")
    recovered = explained_share(truth, from_d110)
    print(f"  held-out bone component explained by the estimate (mean per phantom): "
          f"{with_interval(lambda i: float(np.mean(np.take(recovered, i))), count)}")  # fmt: skip
    print("  share of S120T - D110 (the beam and the CsI detector) explained by")
    print(f"  {'':48s} {'one gain per phantom (mean)':28s} one gain for all phantoms")
    for name, (changes, bases) in pairs.items():
        # benchmarks/physics.py's share: per phantom, and over all phantoms at once (one gain for all).
        shares = [bone_share(d.ravel(), b.ravel()) for d, b in zip(changes, bases, strict=True)]
        own = with_interval(lambda i, shares=shares: float(np.mean(np.take(shares, i))), count)
        one = with_interval(lambda i, d=changes, b=bases: bone_share(d[i].ravel(), b[i].ravel()), count)
        print(f"  {name:48s} {own:28s} {one}")
    # Energy matching as a fit would do it, without pairs: each arm's bone-estimate energy over its own training images
    # gives the ratio of bone contrasts, g^2; S120T's image less (1 - 1/g) times its estimate has D110's bone contrast.
    energy = {arm: float(np.mean(estimate_bone(network, stacks[arm][training]) ** 2)) for arm in ("D110", "S120T")}
    ratio = np.sqrt(energy["S120T"] / energy["D110"])
    matched = stacks["S120T"][held_out] - (1 - 1 / ratio) * from_s120t

    def carried(phantoms: list, estimates: np.ndarray) -> np.ndarray:
        """The same matching carried back to S120T's presented values, and their analysis image made again: what a
        stage of the chain would hand on."""
        preprocessing, made = BenchConfig().preprocessing(), []
        for phantom, correction in zip(phantoms, -(1 - 1 / ratio) * estimates, strict=True):
            kept_values = np.load(kept / f"{phantom.phantom_id}.npz")
            values, spacing = kept_values["values"], tuple(kept_values["spacing"])
            changed = carried_back(values, spacing, correction, preprocessing)
            made.append(analysis_image(changed, preprocessing, spacing))
        return np.stack(made).astype(np.float32)

    from_s120t_train = estimate_bone(network, stacks["S120T"][training])
    carried_test, carried_train = carried(test, from_s120t), carried(train, from_s120t_train)

    def removed(images):
        return lambda index: (
            1 - float(np.sum((images[index] - stacks["D110"][held_out][index]) ** 2) / np.sum(change[index] ** 2))
        )

    def realized(index):
        return 1 - float(
            np.sum((carried_test[index] - matched[index]) ** 2)
            / np.sum((matched[index] - stacks["S120T"][held_out][index]) ** 2)
        )

    print("\n  energy matching with a gain fitted without pairs (each arm's estimate energy on its training images):")
    print(f"  S120T's bone contrast relative to D110's {ratio:.3f}; share of S120T - D110 it removes:")
    for name, images in (
        ("in the analysis image", matched),
        ("carried back to the values, analysed again", carried_test),
    ):
        print(f"  {name:44s} {with_interval(removed(images), count)}")
    print(f"  share of the intended change the carried-back image holds: {with_interval(realized, count)}")
    example = {"D110": stacks["D110"][held_out][0], "S120T": stacks["S120T"][held_out][0], "bone": truth[0]}
    print("\n  the bench's texture classifier, D110 against S120T (its CNN and settings; trained on the training")
    print("  phantoms, the last fifth for early stopping); balanced accuracy on the test phantoms, per training seed:")
    train_matched = stacks["S120T"][training] - (1 - 1 / ratio) * from_s120t_train
    d110_train, d110_test = stacks["D110"][training], stacks["D110"][held_out]
    arms = {
        "before": (stacks["S120T"][training], stacks["S120T"][held_out]),
        "after energy matching": (train_matched, matched),
        "after, carried back": (carried_train, carried_test),
    }
    accuracies = {name: [] for name in arms}
    for seed in args.seeds:
        scores = {
            name: texture_classifier(d110_train, train, d110_test, test, seed) for name, (train, test) in arms.items()
        }

        def gained(name, scores=scores):
            return lambda i: paired_balanced_accuracy(scores[name][i]) - paired_balanced_accuracy(scores["before"][i])

        for name, probabilities in scores.items():
            accuracies[name].append(paired_balanced_accuracy(probabilities))
            shown = with_interval(lambda i, p=probabilities: paired_balanced_accuracy(p[i]), count)
            print(f"  seed {seed}  {name:34s} {shown}")
        for name in list(arms)[1:]:
            print(f"  seed {seed}  {name + ', less before':34s} {with_interval(gained(name), count)}")
    print(f"  over {len(args.seeds)} seeds (mean, and the seeds' range):")
    for name, values in accuracies.items():
        print(f"  {name:42s} {np.mean(values):.3f} ({min(values):.3f} to {max(values):.3f})")
    real = rg1_analysis_image()
    example.update(
        from_D110=from_d110[0],
        matched=matched[0],
        carried=carried_test[0],
        RG1=real,
        from_RG1=estimate_bone(network, real[None])[0],
    )
    print(f"\nfigure: {write_figure(example, FIGURE)}")


if __name__ == "__main__":
    main()
