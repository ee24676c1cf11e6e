"""Statistics of deep features between groups: small pure functions on arrays.

Every statistic here costs at most linear time and memory in the number of images: the quadratic ones (MMD, the
silhouette) run on a seeded random subsample of at most :data:`MAX_IMAGES_PER_GROUP` images per group, the linear
probe on a seeded subsample of whole patients of at most :data:`PROBE_MAX_IMAGES` images, and the covariances of the
Frechet distance are accumulated in blocks of rows. :func:`feature_analysis` computes all of them from arrays and
returns the rows of ``ml_feature_analysis``.

References: Gretton et al., "A Kernel Two-Sample Test", JMLR 13 (2012) (MMD, median heuristic, permutation test);
Sutherland and Deka, "Unbiased estimators for the variance of MMD estimators", arXiv:1906.02104 (2019) (the
variance of the unbiased MMD^2 estimator from its U-statistic form); Heusel et al., "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (Frechet distance between Gaussians fitted to
features); Cherezov, Fu and Madabhushi, 2025 (Kolmogorov-Smirnov effect sizes of scores and features between scanner
and demographic groups).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import linalg, stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, silhouette_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MAX_IMAGES_PER_GROUP = 1000
"""Images per group above which MMD runs on a seeded random subsample of this many per group (a kernel matrix of
2,000 x 2,000, 32 MB; the standard error of MMD^2 at this size is returned with it), and the silhouette on one of this
many times the number of groups."""

PROBE_MAX_IMAGES = 20_000
"""Images above which the linear probe is fitted and scored on a seeded subsample of whole patients."""

PROBE_FOLDS = 5
COVARIANCE_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class MmdResult:
    """Unbiased squared MMD between two groups, with its standard error and permutation p-value.

    ``value`` and ``standard_error`` estimate the population MMD^2 of the kernel; ``images_per_group`` is the number
    of images of each group the estimate used, and ``estimator`` is ``"all images"`` or ``"subsample"``.
    """

    value: float
    standard_error: float
    p_value: float
    images_per_group: tuple[int, int]
    estimator: str


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _subsample(values: np.ndarray, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or len(values) <= size:
        return values
    return values[np.sort(rng.choice(len(values), size, replace=False))]


def _mmd_from_assignments(kernel: np.ndarray, first: np.ndarray, m: int) -> np.ndarray:
    """Unbiased MMD^2 for each column of ``first`` (pooled images x assignments, 1 for the ``m`` images assigned to
    the first group, the other ``n`` to the second), from quadratic forms of the kernel, whose diagonal is 1."""
    n = len(kernel) - m
    kernel_first = kernel @ first
    within_first = np.einsum("ij,ij->j", first, kernel_first)
    towards_first = kernel_first.sum(0)
    between = towards_first - within_first
    within_second = kernel.sum() - 2.0 * towards_first + within_first
    return (within_first - m) / (m * (m - 1)) + (within_second - n) / (n * (n - 1)) - 2.0 * between / (m * n)


def _mmd_variance(kernel: np.ndarray, m: int) -> float:
    """Estimate of the variance of the unbiased MMD^2 estimator, for ``kernel`` of the first ``m`` images (group X)
    followed by the other ``n`` (group Y), with a unit diagonal.

    Hoeffding's decomposition of the two-sample U-statistic splits the variance into orthogonal parts::

        Var = 4 Var f(X) / m + 4 Var f(Y) / n
              + 2 E g_XX^2 / (m (m-1)) + 2 E g_YY^2 / (n (n-1)) + 4 E g_XY^2 / (m n)

    with the witness f = mu_X - mu_Y (mu_X(z) = E k(z, X)) and g the doubly centred kernels, e.g.
    g_XY(x, y) = k(x, y) - mu_Y(x) - mu_X(y) + E k(X, Y). Each part is written with the moments
    zeta_1 = Var mu_X(X), zeta_2 = Var k(X, X') (likewise for Y), Var mu_Y(X), Var mu_X(Y), Var k(X, Y) and
    Cov(mu_X(X), mu_Y(X)), and each moment is estimated without bias by sums over distinct images, as Sutherland and
    Deka (2019) do for m = n. The sum is then an unbiased estimate of the variance, but it is negative in about a
    quarter of samples from equal distributions, where the first-order parts vanish; each part, a variance in the
    population, is therefore clipped at 0. The estimate is unbiased where no part is clipped (clearly different
    groups) and conservative otherwise: about 1.5 times the variance (the standard error 1.25 times) for equal
    distributions in simulations.
    """
    n = len(kernel) - m
    kxx, kyy, kxy = kernel[:m, :m], kernel[m:, m:], kernel[:m, m:]
    rows_x, rows_y = kxx.sum(1) - 1.0, kyy.sum(1) - 1.0  # row sums without the diagonal
    cross_x, cross_y = kxy.sum(1), kxy.sum(0)
    sum_x, sum_y, sum_xy = rows_x.sum(), rows_y.sum(), cross_x.sum()
    squares_x, squares_y = np.einsum("ij,ij->", kxx, kxx) - m, np.einsum("ij,ij->", kyy, kyy) - n
    squares_xy = np.einsum("ij,ij->", kxy, kxy)

    def within(size, total, rows, squares):
        # zeta_1 and zeta_2 of one group, from sums over distinct pairs, triples and quadruples of its images.
        mean_squared = (total**2 - 4.0 * (rows @ rows) + 2.0 * squares) / (size * (size - 1) * (size - 2) * (size - 3))
        triples = ((rows @ rows) - squares) / (size * (size - 1) * (size - 2))
        return triples - mean_squared, squares / (size * (size - 1)) - mean_squared

    def covariance(size, other, total, rows, cross):
        # Cov(mu_X(X), mu_Y(X)) with X the group of this size, from distinct triples and quadruples.
        return (rows @ cross) / (size * (size - 1) * other) - (total * sum_xy - 2.0 * (rows @ cross)) / (
            size * (size - 1) * (size - 2) * other
        )

    zeta1_x, zeta2_x = within(m, sum_x, rows_x, squares_x)
    zeta1_y, zeta2_y = within(n, sum_y, rows_y, squares_y)
    cross_mean_squared = (sum_xy**2 - cross_x @ cross_x - cross_y @ cross_y + squares_xy) / (m * (m - 1) * n * (n - 1))
    var_mu_y_of_x = ((cross_x @ cross_x) - squares_xy) / (m * n * (n - 1)) - cross_mean_squared
    var_mu_x_of_y = ((cross_y @ cross_y) - squares_xy) / (n * m * (m - 1)) - cross_mean_squared
    var_cross = squares_xy / (m * n) - cross_mean_squared
    parts = np.array(
        [
            zeta1_x + var_mu_y_of_x - 2.0 * covariance(m, n, sum_x, rows_x, cross_x),  # Var f(X)
            zeta1_y + var_mu_x_of_y - 2.0 * covariance(n, m, sum_y, rows_y, cross_y),  # Var f(Y)
            zeta2_x - 2.0 * zeta1_x,  # E g_XX^2
            zeta2_y - 2.0 * zeta1_y,  # E g_YY^2
            var_cross - var_mu_y_of_x - var_mu_x_of_y,  # E g_XY^2
        ]
    )
    weights = np.array([4.0 / m, 4.0 / n, 2.0 / (m * (m - 1)), 2.0 / (n * (n - 1)), 4.0 / (m * n)])
    return float(weights @ np.maximum(parts, 0.0))


def mmd_rbf(
    x: np.ndarray,
    y: np.ndarray,
    *,
    permutations: int = 200,
    seed: int = 0,
    max_images_per_group: int | None = MAX_IMAGES_PER_GROUP,
) -> MmdResult:
    """Unbiased squared MMD with an RBF kernel, its standard error and its permutation p-value.

    The estimator is the unbiased quadratic-time MMD^2_u of Gretton et al. (2012, eq. 3) with the kernel
    ``exp(-|a - b|^2 / h)``, ``h`` the median squared distance between the pooled images (the median heuristic).
    A group of more than ``max_images_per_group`` images is first replaced by a random subsample of that many (drawn
    with ``seed``; ``None`` uses every image), so time and memory are bounded whatever the group sizes; the bandwidth
    is the median over the pooled images actually used. A subsample of an i.i.d. sample is itself i.i.d., so the
    estimate stays unbiased for the population MMD^2, with the variance of the estimator at the subsample's size.

    The standard error is the square root of an estimate of the variance of MMD^2_u from its U-statistic form
    (Hoeffding decomposition; Sutherland and Deka, 2019, here for unequal group sizes): the unbiased estimates of its
    orthogonal parts, each clipped at 0 (see :func:`_mmd_variance`), so it is unbiased for clearly different groups
    and about 1.25 times too large for equal ones. It treats the kernel as fixed (the bandwidth chosen from the same
    images is not accounted for) and is NaN when a group has fewer than 4 images.

    The p-value is that of a permutation test of equal distributions on the images used: the share of
    ``permutations`` random reassignments of the pooled images to the two groups (with the observed assignment
    counted once) whose MMD^2_u is at least the observed one.

    Parameters
    ----------
    x, y
        Features of the two groups, images x dimensions; at least 2 images each.
    permutations
        Random reassignments for the p-value.
    seed
        Seeds the subsamples and then the permutations.
    max_images_per_group
        The cap on images per group (:data:`MAX_IMAGES_PER_GROUP` by default), or ``None`` for no cap.

    Returns
    -------
    MmdResult

    Raises
    ------
    ValueError
        If the inputs are not 2-D with the same number of dimensions, or a group has fewer than 2 images.

    References
    ----------
    Gretton et al., "A Kernel Two-Sample Test", JMLR 13 (2012). Sutherland and Deka, "Unbiased estimators for the
    variance of MMD estimators", arXiv:1906.02104 (2019).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected two 2-D arrays with the same number of columns, got shapes {x.shape} and {y.shape}")
    if min(len(x), len(y)) < 2:
        raise ValueError(f"expected at least 2 images per group, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    subsampled = max_images_per_group is not None and max(len(x), len(y)) > max_images_per_group
    x, y = _subsample(x, max_images_per_group, rng), _subsample(y, max_images_per_group, rng)
    m, n = len(x), len(y)
    pooled = np.concatenate([x, y]).astype(np.float64)
    kernel = _squared_distances(pooled, pooled)
    np.fill_diagonal(kernel, 0.0)
    median = np.median(kernel[np.triu_indices(len(pooled), k=1)])
    kernel *= -1.0 / max(median, 1e-12)
    np.exp(kernel, out=kernel)

    first = np.zeros((m + n, permutations + 1))
    first[:m, 0] = 1.0
    for column in range(1, permutations + 1):
        first[rng.permutation(m + n)[:m], column] = 1.0
    statistics = _mmd_from_assignments(kernel, first, m)
    observed = float(statistics[0])
    exceed = int(np.sum(statistics[1:] >= observed))
    variance = _mmd_variance(kernel, m) if min(m, n) >= 4 else float("nan")
    return MmdResult(
        value=observed,
        standard_error=float(np.sqrt(variance)),
        p_value=(exceed + 1) / (permutations + 1),
        images_per_group=(m, n),
        estimator="subsample" if subsampled else "all images",
    )


def _mean_and_covariance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance in float64, accumulated over blocks of rows (memory bounded by the block)."""
    mean = x.mean(0, dtype=np.float64)
    covariance = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), COVARIANCE_BLOCK_ROWS):
        centred = x[start : start + COVARIANCE_BLOCK_ROWS].astype(np.float64) - mean
        covariance += centred.T @ centred
    return mean, covariance / (len(x) - 1)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (images x dimensions).

    ``|mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x C_y)^(1/2))``, where the trace of the root is the sum of the square
    roots of the eigenvalues of ``C_x^(1/2) C_y C_x^(1/2)`` (those of ``C_x C_y``): two symmetric eigendecompositions,
    far faster than ``scipy.linalg.sqrtm`` at 512 dimensions and free of its complex round-off.
    """
    mean_x, cov_x = _mean_and_covariance(np.asarray(x))
    mean_y, cov_y = _mean_and_covariance(np.asarray(y))
    values, vectors = linalg.eigh(cov_x, driver="evd")  # divide and conquer: the default is slow on clustered ones
    root_x = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
    trace_root = np.sqrt(np.maximum(linalg.eigvalsh(root_x @ cov_y @ root_x, driver="evd"), 0.0)).sum()
    return float(((mean_x - mean_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2.0 * trace_root)


def ks_effect(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic (the effect size, 0-1) and its p-value."""
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def ks_over_features(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and maximum KS statistic over the feature dimensions (O(n log n) per dimension; the p-values, unused, are
    the asymptotic ones, since scipy's exact ones cost O(n_a n_b) below 10,000 images)."""
    values = [stats.ks_2samp(a[:, j], b[:, j], method="asymp").statistic for j in range(a.shape[1])]
    return float(np.mean(values)), float(np.max(values))


def patient_subsample(subjects: np.ndarray, max_images: int | None, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of the images of whole patients, drawn in a seeded random order while their images fit in
    ``max_images`` (at least one patient); every index when there are no more than ``max_images`` images or
    ``max_images`` is ``None``."""
    if max_images is None or len(subjects) <= max_images:
        return np.arange(len(subjects))
    patients, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(patients))
    fits = np.cumsum(counts[order]) <= max_images
    fits[0] = True
    chosen = np.zeros(len(patients), dtype=bool)
    chosen[order[fits]] = True
    return np.flatnonzero(chosen[inverse])


def linear_probe(
    features: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    folds: int = PROBE_FOLDS,
    *,
    max_images: int | None = PROBE_MAX_IMAGES,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Balanced accuracy (mean, SD over folds) of a logistic regression predicting ``groups`` from ``features``,
    cross-validated with folds grouped by patient, so no patient is in both the fitting and the scoring part, and the
    number of images it used: a seeded subsample of whole patients of at most ``max_images`` images
    (:func:`patient_subsample`; L-BFGS over every image, per fold, is slow on many). NaN with fewer patients than
    folds or one group only."""
    chosen = patient_subsample(subjects, max_images, seed)
    features, groups, subjects = features[chosen], groups[chosen], subjects[chosen]
    if len(set(subjects)) < folds:
        return float("nan"), float("nan"), len(chosen)
    accuracies = []
    for train_index, test_index in GroupKFold(n_splits=folds).split(features, groups, subjects):
        if len(set(groups[train_index])) < 2:
            continue
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        classifier.fit(features[train_index], groups[train_index])
        accuracies.append(balanced_accuracy_score(groups[test_index], classifier.predict(features[test_index])))
    if not accuracies:
        return float("nan"), float("nan"), len(chosen)
    return float(np.mean(accuracies)), float(np.std(accuracies)), len(chosen)


def held_out_probe(fit: np.ndarray, fit_labels: np.ndarray, test: np.ndarray, kind: str = "linear") -> np.ndarray:
    """Test scores of a probe fitted on other images' features (``fit``, e.g. the validation split's) and applied to
    ``test``: ``linear`` (class-balanced logistic regression; the probability of label 1) or ``rbf`` (an RBF-SVM;
    its predicted label). Neither set should have trained the network the features come from."""
    from sklearn.svm import SVC

    model = LogisticRegression(max_iter=2000, class_weight="balanced") if kind == "linear" else SVC(kernel="rbf")
    probe = make_pipeline(StandardScaler(), model).fit(fit, fit_labels)
    return probe.predict_proba(test)[:, 1] if kind == "linear" else probe.predict(test).astype(float)


def feature_analysis(
    features: np.ndarray,
    scores: np.ndarray,
    scanner: np.ndarray,
    subjects: np.ndarray,
    demographics: Mapping[str, np.ndarray],
    *,
    permutations: int = 200,
    seed: int = 0,
    max_images_per_group: int | None = MAX_IMAGES_PER_GROUP,
    probe_max_images: int | None = PROBE_MAX_IMAGES,
    folds: int = PROBE_FOLDS,
) -> list[dict]:
    """The rows of ``ml_feature_analysis`` (without run_id) for features of images x dimensions.

    Between the scanner groups (``grouping`` ``energy_group``): the linear probe's balanced accuracy and its SD over
    patient-grouped folds, on a subsample of whole patients of at most ``probe_max_images`` images (metric
    ``probe_images``); the silhouette of the scanner labels on a random subsample of at most
    ``max_images_per_group`` times the number of groups (``silhouette_images``); and for each pair of groups with at
    least 3 images each, MMD^2 with its p-value (:func:`mmd_rbf`; ``mmd_squared_standard_error``,
    ``mmd_images_group_a`` and ``mmd_images_group_b``), the Frechet distance, the KS statistic of ``scores`` and the
    mean and maximum KS statistic over the feature dimensions. Within each scanner group, for each column of
    ``demographics`` (values as strings, ``"None"`` for unknown): the KS statistics of scores and features between its
    two largest values, when the second has at least 3 images. Every part is linear in the number of images.
    """
    groups = sorted(set(scanner))
    rows: list[dict] = []

    def add(name, grouping, a, b, metric, value, p=None):
        rows.append(
            {"analysis": name, "grouping": grouping, "group_a": a, "group_b": b, "metric": metric,
             "value": None if value is None else float(value), "p_value": p}
        )  # fmt: skip

    probe, spread, used = linear_probe(features, scanner, subjects, folds, max_images=probe_max_images, seed=seed)
    if not np.isnan(probe):
        add("linear_probe", "energy_group", None, None, "balanced_accuracy", probe)
        add("linear_probe", "energy_group", None, None, "balanced_accuracy_std", spread)
        add("linear_probe", "energy_group", None, None, "probe_images", used)
    if len(groups) > 1:
        cap = None if max_images_per_group is None else max_images_per_group * len(groups)
        sample = _subsample(np.arange(len(features)), cap, np.random.default_rng(seed))
        if 1 < len(set(scanner[sample])) < len(sample):
            silhouette = silhouette_score(features[sample], scanner[sample])
            add("silhouette", "energy_group", None, None, "silhouette", silhouette)
            add("silhouette", "energy_group", None, None, "silhouette_images", len(sample))
    for i, first in enumerate(groups):
        for second in groups[i + 1 :]:
            a, b = features[scanner == first], features[scanner == second]
            if min(len(a), len(b)) < 3:
                continue
            mmd = mmd_rbf(a, b, permutations=permutations, seed=seed, max_images_per_group=max_images_per_group)
            add("mmd_rbf", "energy_group", first, second, "mmd_squared", mmd.value, mmd.p_value)
            add("mmd_rbf", "energy_group", first, second, "mmd_squared_standard_error", mmd.standard_error)
            add("mmd_rbf", "energy_group", first, second, "mmd_images_group_a", mmd.images_per_group[0])
            add("mmd_rbf", "energy_group", first, second, "mmd_images_group_b", mmd.images_per_group[1])
            add("frechet", "energy_group", first, second, "frechet_distance", frechet_distance(a, b))
            statistic, ks_p = ks_effect(scores[scanner == first], scores[scanner == second])
            add("ks_scores", "energy_group", first, second, "ks_statistic", statistic, ks_p)
            mean_ks, max_ks = ks_over_features(a, b)
            add("ks_features", "energy_group", first, second, "mean_ks_statistic", mean_ks)
            add("ks_features", "energy_group", first, second, "max_ks_statistic", max_ks)
            del a, b
    # Fairness: within each scanner group, between sexes and between the two largest race groups.
    for group in groups:
        inside = scanner == group
        for column, values in demographics.items():
            known = [v for v in set(values[inside]) if v != "None"]
            counts = sorted(((int(np.sum(inside & (values == v))), v) for v in known), reverse=True)[:2]
            if len(counts) < 2 or counts[1][0] < 3:
                continue
            (_, a_name), (_, b_name) = counts
            a_mask, b_mask = inside & (values == a_name), inside & (values == b_name)
            statistic, ks_p = ks_effect(scores[a_mask], scores[b_mask])
            add("ks_scores", f"{column} within {group}", a_name, b_name, "ks_statistic", statistic, ks_p)
            mean_ks, _ = ks_over_features(features[a_mask], features[b_mask])
            add("ks_features", f"{column} within {group}", a_name, b_name, "mean_ks_statistic", mean_ks)
    return rows
