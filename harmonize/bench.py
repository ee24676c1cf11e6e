"""The powered benchmark: methods judged on paired renderings, on held-out phantoms only, with controls.

The bench set (``xrh simulate --bench``; its manifest is ``<bench>/manifest.csv``) holds the same phantoms on several
arms, pixel-aligned: D110 (the reference), S120 (the other scanner), S120T (S120's detector and beam behind D110's
processing), D90PA (the portable unit's beam, grid and distance taking a PA), D110R (D110 again with new noise: the
negative control) and HP (an older unit whose headers lack the acquisition tags). Phantoms are split train / validate /
test, and every statistic below is computed on test phantoms, which trained no classifier and no harmonization fit.
The analysis images are ``BenchConfig``'s: a centred field in millimetres, rank-equalized, so that neither the frame nor
a global statistic can tell the arms apart. Per seed and method (``none`` included), with the method fitted on the
reference arm's training images (an acquisition-aware method: on every arm's, each training phantom on one arm only,
:func:`fit_images`) and applied to every image:

- **scanner** (D110 against S120) and **texture** (D110 against S120T: the physics without the vendor's processing):
  a CNN retrained on harmonized training images, its balanced accuracy on the test phantoms (both arms); linear and
  RBF-SVM probes on the frozen unharmonized classifier's features, fitted on validation phantoms and scored on test
  phantoms; MMD and Frechet distance between the arms' test features; with ``none``, ComBat fitted on the validation
  features and applied to the test features (method ``combat``);
- **scanner_controls**, **texture_controls**: an outline-only classifier (which pixels are non-zero, block-averaged)
  and a scalar-cue classifier (zero share, padding widths, distinct values, global quantiles, mean and spread), each
  trained on the training phantoms and scored on the test phantoms, before and after every method: above
  ``CONTROL_LIMIT`` the scanner is readable from a trivial cue and the method's result on that experiment is discarded;
- **fidelity**: SSIM and PSNR of each harmonized S120, S120T, D90PA and HP test image against the D110 rendering of the
  same phantom (the ground truth), at the analysis size; D110R's (the same physics, new noise) is the ceiling, and for
  D90PA and HP, whose shorter distances magnify each depth of the chest differently, so is that of D110 rendered at
  their distance (``GEOMETRY_REFERENCES``, in sets that have them): what no 2-D map can undo;
- **fallback** (acquisition-aware methods): per arm, how many test images the method left (partly) as they were,
  and why (HP's headers carry no distances, so its geometry cannot be matched); **energy** (methods with an
  ``energy`` stage): per arm, the bone-contrast gain the stage fitted for its scanner (1 for the reference's);
- **bone_model** (methods with an ``energy`` stage): the bone model (:mod:`harmonize.bone`) is trained once per run
  on the training phantoms' noisy D110 analysis images and their bone components (``BONE_TRUTH_ARMS``: the same
  phantom on D110 without quantum noise, with and without its bone), and the share of the bone component it explains
  on the validation phantoms is reported (the test phantoms have no truth arms: nothing of a test phantom trains or
  selects it);
- **shift** (physical shift): a pathology model (abnormal vs healthy) trained once per seed on unharmonized D110
  training images, its AUC on the harmonized D110 and D90PA test images and the gap between them; beside it, its gap to
  D110 rendered at D90PA's distance (``auc_gap_D110atD90PA``, in sets that have it): how much of the shift the
  geometry alone makes;
- **null** (negative control): the same model's gap between D110 and D110R, which no method should open;
- **confounded** (Zech et al., PLoS Med. 15 (2018): a model trained where prevalence differs by scanner): a pathology
  model retrained on harmonized training images where abnormal phantoms were taken on D90PA with probability
  ``confounding`` and healthy ones on D110 with the same probability; tested on every test phantom on both arms, its
  AUC and its shortcut: the mean, over test phantoms, of its score on the D90PA image minus its score on the D110 image
  of the same phantom (0: the prediction does not follow the scanner); **confounded_geometry** (in sets that have D110
  at D90PA's distance on training phantoms): the same design with that arm in D90PA's place, so the only cue is the
  distance: the part of the shortcut that no 2-D map can take away, where a method undoes the magnification (the
  parallax is left);
- **ranking**, per scanner experiment: a method ranks only if its shift experiment's mean AUC is at most
  ``NON_INFERIORITY`` below ``none``'s, the experiment's two controls stay under ``CONTROL_LIMIT``, its
  negative-control gap's interval holds 0, and its paired ``|BA - 0.5|`` difference against ``none`` has a 95%
  interval below 0 (the paired difference of ``|BA - 0.5|``: negative when the scanner is harder to find); ranked
  methods are ordered by that difference.

Every interval is a 95% percentile interval over ``models_ml.metrics.BOOTSTRAP_SAMPLES`` resamples of test phantoms,
stratified by class where the metric needs both classes; resampling whole phantoms keeps the pairs together, and the
same resamples for every method make the differences paired. Rows go to ``harm_bench``.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pydicom

from harmonize.acquisition import acquisition_of
from harmonize.config import BenchConfig
from harmonize.controls import CONTROL_LIMIT, NON_INFERIORITY, control_scores
from harmonize.fitting import Harmonization, fallback_reasons, fit_parameters
from harmonize.methods import check_method, reads_acquisition
from harmonize.results import TABLES
from harmonize.scanners import fitted_energy_gain, reads_bone_model
from ingest.images import ImageCache
from models_ml.dataset import CachedImages, cache_images
from models_ml.feature_statistics import frechet_distance, held_out_probe, mmd_rbf
from models_ml.features import embed
from models_ml.metrics import BOOTSTRAP_SAMPLES, auc, bootstrap, percentile_interval, test_images_for_half_width
from models_ml.torch_setup import choose_device
from models_ml.train import fit_classifier
from xrh.batches import BatchMapper
from xrh.tables import replace_run_rows

REFERENCE_ARM = "D110"
SHIFT_ARM = "D90PA"
NULL_ARM = "D110R"
# The unit whose headers lack the acquisition tags (training and test phantoms; optional in older bench sets): its
# fidelity shows what an acquisition-aware method does where the header is silent.
SILENT_ARM = "HP"
# D110 rendered at an arm's source-to-image distance (optional in older bench sets): its fidelity against D110 is the
# parallax ceiling of that arm's.
GEOMETRY_REFERENCES = {SHIFT_ARM: "D110atD90PA", SILENT_ARM: "D110atHP"}
# The frozen D110 pathology model's test arms, each with its experiment and the name of its AUC gap to D110: the
# physical shift, the same distance alone (how much of the shift's gap the geometry makes; in sets that have it) and
# the negative control.
DIAGNOSTIC_ARMS = {
    REFERENCE_ARM: ("shift", None),
    SHIFT_ARM: ("shift", "auc_gap"),
    GEOMETRY_REFERENCES[SHIFT_ARM]: ("shift", f"auc_gap_{GEOMETRY_REFERENCES[SHIFT_ARM]}"),
    NULL_ARM: ("null", "auc_gap"),
}
# The two scanner experiments: D110 against S120 as it is, and against S120's physics behind D110's processing.
PARTNERS = {"scanner": "S120", "texture": "S120T"}
# The manifest and the arm names are the bench set's file format, written by simulate/bench.py (harmonize does not
# import the simulator: a bench set is files, like any data set).
MANIFEST_COLUMNS = ("phantom_id", "split", "sex", "abnormal", "finding", "arm", "path")
# The bone model's truth (training and validation phantoms, in sets that have them): D110 without quantum noise, and
# the same with its bone replaced by soft tissue. Not a scanner: no experiment, fit or statistic reads them.
BONE_TRUTH_ARMS = ("D110clean", "D110boneless")


@dataclass(frozen=True)
class BenchImage:
    """One rendering of one phantom; ``label`` is what the classifier at hand predicts."""

    dicom_id: str
    phantom_id: int
    arm: str
    split: str
    abnormal: int
    path: Path
    label: int = 0


def read_manifest(bench_dir: Path, *, truth: bool = False) -> list[BenchImage]:
    """The bench set's scanner images (``truth``: its bone-model truth, ``BONE_TRUTH_ARMS``, instead); a missing or
    malformed manifest is a one-line error that says how to make one."""
    manifest = Path(bench_dir) / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(
            f"{manifest}: no bench manifest; render the set first with `xrh simulate --bench 2000 --out {bench_dir}`"
        )
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{manifest}: missing columns {sorted(missing)}; expected {list(MANIFEST_COLUMNS)}")
        images = [
            BenchImage(
                dicom_id=f"{row['phantom_id']}-{row['arm']}",
                phantom_id=int(row["phantom_id"]),
                arm=row["arm"],
                split=row["split"],
                abnormal=int(row["abnormal"]),
                path=Path(bench_dir) / row["path"],
            )
            for row in reader
            if (row["arm"] in BONE_TRUTH_ARMS) == truth
        ]
    if truth:
        return images
    arms = {image.arm for image in images}
    needed = {REFERENCE_ARM, *PARTNERS.values(), SHIFT_ARM, NULL_ARM}
    if not needed <= arms:
        raise ValueError(f"{manifest}: arms {sorted(needed - arms)} are missing; render the set again")
    return images


def set_identity(images: list[BenchImage]) -> str:
    """What names the set's cached analysis images: a digest of every file's name, size and modification time. The
    cache is keyed by image (phantom and arm), so a set rendered again into the same folder (a new stand-in version)
    would otherwise be read from the old set's analysis images. A copy that keeps the files' times shares the cache;
    one that does not is preprocessed again.

    Raises
    ------
    ValueError
        If a file the manifest lists is missing.
    """
    digest = hashlib.sha256()
    for image in images:
        try:
            stat = image.path.stat()
        except FileNotFoundError:
            raise ValueError(f"{image.path}: listed in the bench manifest but missing; render the set again") from None
        digest.update(f"{image.path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def _select(images: list[BenchImage], split: str, arms: tuple[str, ...], label: Callable[[BenchImage], int]):
    """The split's images of ``arms``, ordered by phantom then arm, each labelled."""
    chosen = [i for i in images if i.split == split and i.arm in arms]
    chosen.sort(key=lambda i: (i.phantom_id, arms.index(i.arm)))
    return [BenchImage(**{**vars(i), "label": label(i)}) for i in chosen]


def scanner_images(images: list[BenchImage], split: str, partner: str = PARTNERS["scanner"]) -> list[BenchImage]:
    """The split's images of the reference arm (label 0) and ``partner`` (label 1), in pairs."""
    return _select(images, split, (REFERENCE_ARM, partner), lambda i: int(i.arm == partner))


def diagnostic_images(images: list[BenchImage], split: str, arms: tuple[str, ...]) -> list[BenchImage]:
    return _select(images, split, arms, lambda i: i.abnormal)


def confounded_images(
    images: list[BenchImage], split: str, share: float, seed: int, shifted: str = SHIFT_ARM
) -> list[BenchImage]:
    """One image per phantom: abnormal ones on ``shifted`` with probability ``share``, healthy ones on D110 with it
    (the same draws for any ``shifted``)."""
    rng = np.random.default_rng(seed)
    pairs = diagnostic_images(images, split, (REFERENCE_ARM, shifted))
    by_phantom: dict[int, dict[str, BenchImage]] = {}
    for image in pairs:
        by_phantom.setdefault(image.phantom_id, {})[image.arm] = image
    chosen = []
    for phantom in sorted(by_phantom):
        arms = by_phantom[phantom]
        abnormal = next(iter(arms.values())).abnormal
        on_shift = rng.random() < share if abnormal else rng.random() >= share
        chosen.append(arms[shifted if on_shift else REFERENCE_ARM])
    return chosen


def as_pairs(values: np.ndarray, arms: int) -> np.ndarray:
    """Scores of images ordered by phantom then arm, as a (phantoms, arms) matrix."""
    return values.reshape(-1, arms)


# ----------------------------------------------------------------------------------------------------------------------
# Statistics over test phantoms (rows of a (phantoms, arms) matrix), paired across methods by a shared seed.


def scanner_balanced_accuracy(scores: np.ndarray) -> float:
    """Balanced accuracy at 0.5 of (phantoms, [D110 score, S120 score]): S120 is the positive class."""
    return 0.5 * (float(np.mean(scores[:, 1] > 0.5)) + float(np.mean(scores[:, 0] <= 0.5)))


def interval(statistic: Callable[[np.ndarray], float], strata: list[np.ndarray], seed: int) -> tuple[float, float]:
    return percentile_interval(bootstrap(statistic, strata, np.random.default_rng(seed)))


def _row(seed, method, experiment, metric, value, low=None, high=None, note=None) -> dict[str, object]:
    return {
        "seed": seed,
        "method": method,
        "experiment": experiment,
        "metric": metric,
        "value": float(value),
        "ci_low": None if low is None else float(low),
        "ci_high": None if high is None else float(high),
        "note": note,
    }


@dataclass
class _MethodScores:
    """What the ranking needs of one method: paired test scores."""

    scanner: dict[str, tuple[np.ndarray, dict[str, float]]]  # per scanner experiment: retrained (phantoms, 2), controls
    shift: np.ndarray  # (phantoms, 2): the frozen pathology model's scores on D110 and D90PA
    null: np.ndarray  # (phantoms, 2): on D110 and D110R


def run_bench(
    conn: sqlite3.Connection,
    bench_dir: Path,
    cache_dir: Path,
    config: BenchConfig,
    run_id: str,
    *,
    map_batches: BatchMapper,
    device_setting: str = "auto",
) -> list[dict[str, object]]:
    """Run every seed and method; write and return the ``harm_bench`` rows. Analysis images are cached under
    ``<cache_dir>/bench_sets/<set identity>/`` (:func:`set_identity`)."""
    for method in config.methods:
        if method != "none":
            check_method(method)  # an unknown name fails before any work
    images = read_manifest(bench_dir)
    device = choose_device(device_setting)
    preprocessing = config.preprocessing()
    set_cache = Path(cache_dir) / "bench_sets" / set_identity(images)
    base = cache_images(images, ImageCache(set_cache, preprocessing), map_batches)
    rows: list[dict[str, object]] = []
    bone_model, bone_rows = None, []
    bone_methods = [m for m in config.methods if reads_bone_model(m)]
    if bone_methods:
        # The truth arms' analysis images share the set's cache: a set extended with them keeps its identity.
        fitted = fit_bench_bone_model(images, read_manifest(bench_dir, truth=True), base, map_batches)
        bone_model = fitted.model
        note = (
            f"trained on {fitted.training_phantoms} training phantoms; {fitted.validation_phantoms} validation phantoms"
        )
        bone_rows = [
            {**_row(0, method, "bone_model", "bone_explained_validate", fitted.explained, fitted.ci_low,
                    fitted.ci_high, note), "test_phantoms": None}  # judged on validation phantoms
            for method in bone_methods
        ]  # fmt: skip
    # Each method is fitted and applied once: neither depends on the seed, which only trains the classifiers.
    harmonized = {
        method: _Harmonized(base)
        if method == "none"
        else _harmonized(images, set_cache, preprocessing, method, map_batches, bone_model)
        for method in config.methods
    }
    test_phantoms = len({i.phantom_id for i in images if i.split == "test"})
    for seed in config.seeds:
        done = _one_seed(images, base, harmonized, set_cache, config, seed, device)
        rows += [{**row, "test_phantoms": test_phantoms} for row in done]
        # Written after every seed (all rows so far, in one transaction): a long run shows its finished seeds.
        replace_run_rows(conn, {TABLES["harm_bench"]: rows + bone_rows}, run_id)
    return rows + bone_rows


def bone_pairs(images: list[BenchImage], cache: ImageCache, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's bone-model pairs, by phantom: the noisy D110 analysis image, and its bone component (the truth
    arms' analysis images, the clean one less the boneless one); phantoms without all three are passed over."""
    by_arm = {(i.phantom_id, i.arm): i.dicom_id for i in images if i.split == split}
    arms = (REFERENCE_ARM, *BONE_TRUTH_ARMS)
    phantoms = sorted({p for p, _ in by_arm if all((p, arm) in by_arm for arm in arms)})
    inputs = [cache.load(by_arm[p, REFERENCE_ARM]) for p in phantoms]
    targets = [cache.load(by_arm[p, BONE_TRUTH_ARMS[0]]) - cache.load(by_arm[p, BONE_TRUTH_ARMS[1]]) for p in phantoms]
    size = cache.preprocessing.size
    empty = np.zeros((0, size, size), dtype=np.float32)
    return (np.stack(inputs), np.stack(targets)) if phantoms else (empty, empty)


@dataclass(frozen=True)
class BoneModelFit:
    """A bone model trained on a bench set, and how well it explains the validation phantoms' bone components (the
    mean share per phantom, with a bootstrap 95% interval over them)."""

    model: dict
    training_phantoms: int
    validation_phantoms: int
    explained: float
    ci_low: float
    ci_high: float


def fit_bench_bone_model(
    images: list[BenchImage], truth: list[BenchImage], cache: ImageCache, map_batches: BatchMapper, seed: int = 0
) -> BoneModelFit:
    """The bone model an ``energy`` stage reads (:mod:`harmonize.bone`), trained on the training phantoms' pairs
    (:func:`bone_pairs`) of the set's scanner ``images`` and bone ``truth``, in ``cache``'s analysis domain, and judged
    on the validation phantoms'; only the images it needs are preprocessed.

    Raises
    ------
    ValueError
        If the set has no truth arms (rendered before they were added).
    """
    from harmonize.bone import estimate_bone, explained_share, train_bone_model

    needed = [i for i in images if i.arm == REFERENCE_ARM and i.split in ("train", "validate")] + truth
    cache_images(needed, cache, map_batches)
    inputs, targets = bone_pairs(needed, cache, "train")
    held_in, held_truth = bone_pairs(needed, cache, "validate")
    if not len(inputs) or not len(held_in):
        raise ValueError(
            f"the bench set has no {' or '.join(BONE_TRUTH_ARMS)} images on training and validation phantoms, which "
            "the bone model trains on: render it again with `xrh simulate --bench` into the same folder (only "
            "what is missing is rendered)"
        )
    model = train_bone_model(inputs, targets, cache.preprocessing, seed=seed)
    shares = explained_share(held_truth, estimate_bone(model, held_in))

    def statistic(index: np.ndarray) -> float:
        return float(np.mean(shares[index]))

    low, high = interval(statistic, [np.arange(len(shares))], seed)
    return BoneModelFit(model, len(inputs), len(shares), statistic(np.arange(len(shares))), low, high)


def _train_and_score(config, seed, train, validate, tests, cache, device, checkpoint):
    """Fit a CNN on ``train`` (early stopping on ``validate``); return its model and its scores on each of ``tests``."""
    labels = np.array([i.label for i in train])
    fitted = fit_classifier(
        config.train_config(seed),
        2,
        CachedImages(train, cache),
        CachedImages(validate, cache),
        labels,
        device,
        checkpoint,
    )
    return fitted.model, [embed(fitted.model, CachedImages(test, cache), device) for test in tests]


@dataclass
class _Seed:
    """What every method of one seed shares: the images, the frozen models and the test phantoms' arrays."""

    images: list[BenchImage]
    config: BenchConfig
    seed: int
    device: object
    checkpoint: Path
    frozen: dict[str, object]  # per scanner experiment: its classifier trained on unharmonized images
    pathology: object
    sets: dict[str, dict[str, list[BenchImage]]]  # per scanner experiment and split: its images, in pairs
    test_pairs: list[BenchImage]  # test phantoms on DIAGNOSTIC_ARMS (those the set has), in that order
    abnormal: np.ndarray  # per test phantom
    truth: dict[int, np.ndarray]  # the unharmonized D110 analysis image per test phantom

    @property
    def by_class(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.abnormal == 0), np.flatnonzero(self.abnormal == 1)]

    @property
    def everyone(self) -> list[np.ndarray]:
        return [np.arange(len(self.abnormal))]


def fit_images(images: list[BenchImage], method: str) -> tuple[list[Path], list[Path]]:
    """What ``method`` is fitted on: the reference arm's training images; for an acquisition-aware method, every arm's
    training images, each training phantom on one arm only (dealt in turn), so that no scanner's fit sees another's
    renderings of the same phantom: the scanners' fits are as unpaired as they would be on real data."""
    train = [i for i in images if i.split == "train"]
    if not reads_acquisition(method):
        return [i.path for i in train if i.arm == REFERENCE_ARM], []
    # The geometry references are D110's unit, a scanner the fit already has: not dealt phantoms of their own.
    arms = [arm for arm in dict.fromkeys(i.arm for i in train) if arm not in GEOMETRY_REFERENCES.values()]
    phantoms = sorted({i.phantom_id for i in train})
    dealt = {phantom: arms[index % len(arms)] for index, phantom in enumerate(phantoms)}
    chosen = [i for i in train if dealt[i.phantom_id] == i.arm]
    return [i.path for i in chosen if i.arm == REFERENCE_ARM], [i.path for i in chosen if i.arm != REFERENCE_ARM]


@dataclass(frozen=True)
class _Harmonized:
    """One method's analysis images of the whole set, and for an acquisition-aware method, per arm, how many test
    images it left (partly) as they were and why, and the bone-contrast gain of an energy stage: the same for every
    seed, so made once."""

    cache: ImageCache
    fallbacks: tuple[tuple[str, int, str | None], ...] = ()
    energy_gains: tuple[tuple[str, float], ...] = ()


def _harmonized(images, cache_dir, preprocessing, method, map_batches, bone_model=None) -> _Harmonized:
    references, others = fit_images(images, method)
    params = fit_parameters(method, references, map_batches, other_paths=others, bone_model=bone_model)
    harmonization = Harmonization(method, params)
    variant = ImageCache(cache_dir, preprocessing, harmonization.variant())
    cache = cache_images(images, variant, map_batches, transform=harmonization)
    if not reads_acquisition(method):
        return _Harmonized(cache)
    tests = [i for i in images if i.split == "test"]
    reasons = fallback_reasons(harmonization, [i.path for i in tests], map_batches)
    fallbacks = []
    for arm in dict.fromkeys(i.arm for i in images):
        fell_back = [reason for image, reason in zip(tests, reasons, strict=True) if image.arm == arm and reason]
        fallbacks.append((f"fallback_images_{arm}", len(fell_back), "; ".join(sorted(set(fell_back))) or None))
    gains = []
    if reads_bone_model(method):
        for arm in dict.fromkeys(i.arm for i in tests):
            header = pydicom.dcmread(next(i.path for i in tests if i.arm == arm), stop_before_pixels=True)
            gain = fitted_energy_gain(params, acquisition_of(header))
            gains += [] if gain is None else [(f"energy_gain_{arm}", gain)]
    return _Harmonized(cache, tuple(fallbacks), tuple(gains))


def _one_seed(images, base, harmonized, cache_dir, config, seed, device):
    checkpoint = Path(cache_dir) / "bench" / f"seed{seed}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    sets = {
        experiment: {split: scanner_images(images, split, partner) for split in ("train", "validate", "test")}
        for experiment, partner in PARTNERS.items()
    }
    # The frozen models of this seed, trained on unharmonized images: the scanner classifiers the probes read, and the
    # D110 pathology model of the shift and null experiments.
    frozen = {
        experiment: _train_and_score(config, seed, own["train"], own["validate"], [], base, device, checkpoint)[0]
        for experiment, own in sets.items()
    }
    pathology, _ = _train_and_score(
        config,
        seed,
        diagnostic_images(images, "train", (REFERENCE_ARM,)),
        diagnostic_images(images, "validate", (REFERENCE_ARM,)),
        [],
        base,
        device,
        checkpoint,
    )
    present = {i.arm for i in images}
    test_pairs = diagnostic_images(images, "test", tuple(a for a in DIAGNOSTIC_ARMS if a in present))
    context = _Seed(
        images=images,
        config=config,
        seed=seed,
        device=device,
        checkpoint=checkpoint,
        frozen=frozen,
        pathology=pathology,
        sets=sets,
        test_pairs=test_pairs,
        abnormal=np.array([i.label for i in test_pairs if i.arm == REFERENCE_ARM]),
        truth={i.phantom_id: base.load(i.dicom_id) for i in test_pairs if i.arm == REFERENCE_ARM},
    )
    rows, scores = [], {}
    for method, made in harmonized.items():
        rows += [_row(seed, method, "fallback", metric, count, note=note) for metric, count, note in made.fallbacks]
        rows += [_row(seed, method, "energy", metric, gain) for metric, gain in made.energy_gains]
        method_rows, scores[method] = _evaluate_method(context, method, made.cache)
        rows += method_rows
    rows += _ranking(scores, context)
    return rows


class _Rows:
    """Collects one seed's rows of one method, each with its bootstrap interval over test phantoms."""

    def __init__(self, context: _Seed, method: str) -> None:
        self.context, self.method, self.rows = context, method, []

    def add(self, experiment, metric, value, statistic=None, strata=None, note=None, method=None) -> None:
        low, high = interval(statistic, strata, self.context.seed) if statistic is not None else (None, None)
        self.rows.append(_row(self.context.seed, method or self.method, experiment, metric, value, low, high, note))

    def balanced(self, experiment, metric, scores: np.ndarray, *, limit=None, method=None) -> float:
        """A balanced-accuracy row of (phantoms, 2) scores, its interval over test phantoms; above ``limit`` (a
        control's) the row says its experiment's result is discarded."""
        value = scanner_balanced_accuracy(scores)
        note = "discarded: above the control limit" if limit is not None and value > limit else None
        statistic = lambda index: scanner_balanced_accuracy(scores[index])  # noqa: E731
        self.add(experiment, metric, value, statistic, self.context.everyone, note, method)
        return value


def _scanner_rows(out: _Rows, cache: ImageCache, experiment: str, train) -> tuple[np.ndarray, dict[str, float]]:
    """One scanner experiment for one method: retrained classifier, controls, probes, MMD and Frechet distance."""
    from harmonize import combat

    c = out.context
    own = c.sets[experiment]
    retrained = train(own["train"], own["validate"], own["test"])
    out.balanced(experiment, "retrained_balanced_accuracy", retrained)
    controls = {}
    for name, control in control_scores(own["train"], own["test"], cache).items():
        metric = f"{name}_balanced_accuracy"
        controls[name] = out.balanced(f"{experiment}_controls", metric, as_pairs(control, 2), limit=CONTROL_LIMIT)
    validate, _ = embed(c.frozen[experiment], CachedImages(own["validate"], cache), c.device)
    test, _ = embed(c.frozen[experiment], CachedImages(own["test"], cache), c.device)
    validate_labels = np.array([i.label for i in own["validate"]])
    test_labels = np.array([i.label for i in own["test"]])
    for kind in ("linear", "rbf"):
        probed = as_pairs(held_out_probe(validate, validate_labels, test, kind), 2)
        out.balanced(experiment, f"probe_{kind}_balanced_accuracy", probed)
    mmd = mmd_rbf(test[test_labels == 0], test[test_labels == 1], seed=c.seed)
    out.add(experiment, "mmd_squared", mmd.value, note=f"standard error {mmd.standard_error:.4g}, p {mmd.p_value:.3g}")
    out.add(experiment, "frechet_distance", frechet_distance(test[test_labels == 0], test[test_labels == 1]))
    if out.method == "none":
        # ComBat on the frozen features: fitted on the validation phantoms with their arms, applied to the test ones.
        params = combat.fit(validate, validate_labels.astype(str))
        validate_combat = combat.apply(validate, validate_labels.astype(str), params)
        test_combat = combat.apply(test, test_labels.astype(str), params)
        for kind in ("linear", "rbf"):
            probed = as_pairs(held_out_probe(validate_combat, validate_labels, test_combat, kind), 2)
            out.balanced(experiment, f"probe_{kind}_balanced_accuracy", probed, method="combat")
    return retrained, controls


def _fidelity(reference: np.ndarray, harmonized: np.ndarray) -> tuple[float, float]:
    """SSIM and PSNR (dB) of a harmonized analysis image against the reference rendering of the same phantom."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    return (
        structural_similarity(reference, harmonized, data_range=1.0),
        peak_signal_noise_ratio(reference, harmonized, data_range=1.0),
    )


def _evaluate_method(context: _Seed, method: str, cache: ImageCache) -> tuple[list[dict[str, object]], _MethodScores]:
    c, out = context, _Rows(context, method)

    def train(train_set, validate_set, test_set):
        _, [(_, scores)] = _train_and_score(
            c.config, c.seed, train_set, validate_set, [test_set], cache, c.device, c.checkpoint
        )
        return as_pairs(scores, 2)

    results = {experiment: _scanner_rows(out, cache, experiment, train) for experiment in PARTNERS}
    # Fidelity against the reference rendering of the same phantom; D110R's (new noise only) and the geometry
    # references' (the distance only) are the ceilings.
    present = {i.arm for i in c.images}
    fidelity_arms = (*PARTNERS.values(), SHIFT_ARM, SILENT_ARM, NULL_ARM, *GEOMETRY_REFERENCES.values())
    for arm in [a for a in fidelity_arms if a in present]:
        measured = [
            _fidelity(c.truth[i.phantom_id], cache.load(i.dicom_id))
            for i in c.images
            if i.split == "test" and i.arm == arm
        ]
        for column, metric in enumerate(("ssim", "psnr_db")):
            values = np.array([m[column] for m in measured])
            out.add(
                "fidelity",
                f"{metric}_{arm}_vs_{REFERENCE_ARM}",
                values.mean(),
                lambda index, v=values: float(v[index].mean()),
                c.everyone,
            )
    # Shift and null: the frozen D110 pathology model on harmonized test images.
    _, frozen = embed(c.pathology, CachedImages(c.test_pairs, cache), c.device)
    arms = list(dict.fromkeys(i.arm for i in c.test_pairs))
    frozen = as_pairs(frozen, len(arms))

    def arm_auc(index, arm):
        return auc(c.abnormal[index], _two_columns(frozen[index, arms.index(arm)]))

    everything = np.arange(len(c.abnormal))
    for arm in arms:
        statistic = partial(arm_auc, arm=arm)
        out.add(DIAGNOSTIC_ARMS[arm][0], f"auc_{arm}", statistic(everything), statistic, c.by_class)
    for arm in arms[1:]:

        def gap(index, other=arm):
            return arm_auc(index, REFERENCE_ARM) - arm_auc(index, other)

        experiment, metric = DIAGNOSTIC_ARMS[arm]
        out.add(experiment, metric, gap(everything), gap, c.by_class)
    # Confounded: retrained where prevalence differs by arm; tested on both arms of every test phantom. Its geometry
    # twin where the set has D110 at D90PA's distance on training phantoms.
    confounded_arms = {"confounded": SHIFT_ARM, "confounded_geometry": GEOMETRY_REFERENCES[SHIFT_ARM]}
    trained_arms = {i.arm for i in c.images if i.split == "train"}
    for experiment, shifted in confounded_arms.items():
        if shifted not in trained_arms:
            continue
        confounded = train(
            confounded_images(c.images, "train", c.config.confounding, c.seed, shifted),
            confounded_images(c.images, "validate", c.config.confounding, c.seed, shifted),
            diagnostic_images(c.images, "test", (REFERENCE_ARM, shifted)),
        )

        def pooled_auc(index, scores=confounded):
            return auc(np.repeat(c.abnormal[index], 2), _two_columns(scores[index].ravel()))

        out.add(experiment, "auc", pooled_auc(everything), pooled_auc, c.by_class)
        shortcut = confounded[:, 1] - confounded[:, 0]
        out.add(experiment, "shortcut", shortcut.mean(), lambda index, s=shortcut: float(s[index].mean()), c.everyone)

    def against_reference(arm):
        return frozen[:, [arms.index(REFERENCE_ARM), arms.index(arm)]]

    return out.rows, _MethodScores(results, against_reference(SHIFT_ARM), against_reference(NULL_ARM))


def _two_columns(positive: np.ndarray) -> np.ndarray:
    """Scores of the positive class as the (n, 2) probabilities ``models_ml.metrics.auc`` takes."""
    return np.stack([1 - positive, positive], axis=1)


def _ranking(scores: dict[str, _MethodScores], context: _Seed) -> list[dict[str, object]]:
    """Paired differences against ``none`` and, per scanner experiment, the rank of the methods that qualify (see the
    module docstring)."""
    if "none" not in scores:
        return []
    none = scores["none"]
    abnormal, seed, everything = context.abnormal, context.seed, np.arange(len(context.abnormal))
    rows, ranked = [], {experiment: [] for experiment in PARTNERS}

    def add(method, metric, statistic, strata, note=None):
        value, (low, high) = statistic(everything), interval(statistic, strata, seed)
        rows.append(_row(seed, method, "ranking", metric, value, low, high, note))
        return value, high

    def mean_auc(s: np.ndarray, index) -> float:
        return 0.5 * sum(auc(abnormal[index], _two_columns(s[index, a])) for a in (0, 1))

    def distance(s: np.ndarray, index) -> float:
        return abs(scanner_balanced_accuracy(s[index]) - 0.5)

    for method, own in scores.items():
        if method == "none":
            continue
        auc_value, _ = add(
            method,
            "shift_mean_auc_difference",
            lambda index, s=own.shift: mean_auc(s, index) - mean_auc(none.shift, index),
            context.by_class,
        )
        non_inferior = auc_value >= -NON_INFERIORITY
        if not non_inferior:
            rows[-1]["note"] = f"inferior: more than {NON_INFERIORITY} below none"

        def null_gap(index, s=own.null):
            return auc(abnormal[index], _two_columns(s[index, 0])) - auc(abnormal[index], _two_columns(s[index, 1]))

        null_low, null_high = interval(null_gap, context.by_class, seed)
        null_ok = null_low <= 0 <= null_high
        if not null_ok:
            rows.append(_row(seed, method, "ranking", "null_gap_excludes_zero", null_gap(everything), null_low,
                             null_high, "a gap where there is none: not ranked"))  # fmt: skip
        for experiment, (retrained, controls) in own.scanner.items():
            baseline = none.scanner[experiment][0]
            value, high = add(
                method,
                f"{experiment}_distance_difference",
                lambda index, s=retrained, b=baseline: distance(s, index) - distance(b, index),
                context.everyone,
            )
            controls_ok = all(v <= CONTROL_LIMIT for v in controls.values())
            if non_inferior and controls_ok and null_ok and high < 0:
                ranked[experiment].append((value, method))
    for experiment, qualified in ranked.items():
        for rank, (value, method) in enumerate(sorted(qualified), start=1):
            note = f"paired |BA - 0.5| difference {value:+.3f}"
            rows.append(_row(seed, method, "ranking", f"{experiment}_rank", rank, note=note))
    return rows


def power_lines(balanced_accuracy_half_width: float = 0.025, auc_half_width: float = 0.025) -> list[str]:
    """Test-set sizes for the target interval half-widths, from the normal approximation at the worst case."""
    images = test_images_for_half_width(balanced_accuracy_half_width)
    # Hanley and McNeil (Radiology 143, 1982): the AUC's variance at 0.85 with equal classes, doubled for a gap of two
    # independent AUCs (paired renderings only narrow it).
    a = 0.85
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance_n = a * (1 - a) + (q1 - a * a) + (q2 - a * a)  # times 1/n per class
    auc_per_class = int(np.ceil(2 * variance_n * (1.96 / auc_half_width) ** 2))
    return [
        f"balanced accuracy within ±{balanced_accuracy_half_width}: {images} test images "
        f"({images // 2} per scanner) at the worst case (0.5)",
        f"an AUC gap within ±{auc_half_width} from independent test sets: {auc_per_class} images per class and arm "
        f"(Hanley and McNeil at AUC {a}); paired renderings of the same phantoms need fewer (the bench reports the "
        "interval it reached)",
        f"bootstrap resamples per interval: {BOOTSTRAP_SAMPLES}",
    ]
