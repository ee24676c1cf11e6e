"""ComBat on deep features: per-feature location and scale per scanner with empirical Bayes shrinkage.

Johnson, Li and Rabinovic, "Adjusting batch effects in microarray expression data using empirical Bayes methods",
Biostatistics 8 (2007); Fortin et al., "Harmonization of cortical thickness measurements across scanners and sites",
NeuroImage 167 (2018) (neuroCombat); reference-batch mode as in Zhang et al., BMC Bioinformatics 19 (2018).

Covariates to preserve (age, sex, ...) enter the design; do not put a label there that is imbalanced across scanners
(on MIMIC, portable AP patients are much sicker than PA patients): the model would attribute part of the scanner effect
to the label. Scanners not seen at fit time are never left as NaN: with two or more images their location and scale
are estimated from those images and shrunk towards the fitted priors; a single image gets the priors' mean scale and its
own location shrunk towards the prior mean.
"""

from __future__ import annotations

import logging

import numpy as np

from harmonize.common import Params

log = logging.getLogger(__name__)
ITERATIONS = 100
TOLERANCE = 1e-4


def _design(batches: np.ndarray, names: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    indicator = (batches[:, None] == names[None, :]).astype(np.float64)
    return indicator if covariates is None else np.hstack([indicator, np.asarray(covariates, dtype=np.float64)])


def _priors(gamma_hat: np.ndarray, delta_hat: np.ndarray) -> tuple[float, float, float, float]:
    """Method-of-moments hyperparameters: normal prior on locations, inverse gamma on scales."""
    gamma_bar, tau2 = float(gamma_hat.mean()), float(max(gamma_hat.var(ddof=1), 1e-12))
    mean, variance = float(delta_hat.mean()), float(max(delta_hat.var(ddof=1), 1e-12))
    return gamma_bar, tau2, (2 * variance + mean**2) / variance, (mean * variance + mean**3) / variance


def _shrink(z: np.ndarray, gamma_bar: float, tau2: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior location and scale of one batch's standardized data (iterated to convergence)."""
    n = len(z)
    gamma_hat = z.mean(axis=0)
    delta_hat = z.var(axis=0, ddof=1) if n > 1 else np.full(z.shape[1], b / max(a - 1, 1e-12))
    gamma, delta = gamma_hat.copy(), delta_hat.copy()
    for _ in range(ITERATIONS):
        gamma_new = (n * tau2 * gamma_hat + delta * gamma_bar) / (n * tau2 + delta)
        delta_new = (b + 0.5 * ((z - gamma_new) ** 2).sum(axis=0)) / (n / 2 + a - 1)
        converged = max(np.abs(gamma_new - gamma).max(), np.abs(delta_new - delta).max() / max(delta.max(), 1e-12))
        gamma, delta = gamma_new, delta_new
        if converged < TOLERANCE:
            break
    return gamma, np.maximum(delta, 1e-12)


def fit(
    features: np.ndarray, batches: np.ndarray, covariates: np.ndarray | None = None, *, reference: str | None = None
) -> Params:
    """Fit ComBat on ``features`` (images x features) grouped by ``batches`` (scanner per image).

    ``reference``: a batch left unchanged, onto which the others are mapped.
    """
    features = np.asarray(features, dtype=np.float64)
    batches = np.asarray(batches).astype(str)
    names = np.unique(batches)
    if len(names) < 2:
        raise ValueError(f"ComBat needs at least two batches, got {list(names)}")
    if reference is not None and reference not in names:
        raise ValueError(f"reference batch {reference!r} is not among {list(names)}")
    design = _design(batches, names, covariates)
    coefficients, *_ = np.linalg.lstsq(design, features, rcond=None)
    batch_means = coefficients[: len(names)]
    if reference is None:
        shares = np.array([(batches == name).mean() for name in names])
        grand_mean = shares @ batch_means
        residual = features - design @ coefficients
    else:
        grand_mean = batch_means[list(names).index(reference)]
        in_reference = batches == reference
        residual = (features - design @ coefficients)[in_reference]
    variance = np.maximum((residual**2).mean(axis=0), 1e-12)
    covariate_effect = coefficients[len(names) :]
    standardized = (features - grand_mean - (design[:, len(names) :] @ covariate_effect)) / np.sqrt(variance)
    gammas, deltas, hyper = [], [], []
    for name in names:
        z = standardized[batches == name]
        gamma_hat, delta_hat = z.mean(axis=0), z.var(axis=0, ddof=1) if len(z) > 1 else np.ones(z.shape[1])
        priors = _priors(gamma_hat, delta_hat)
        gamma, delta = _shrink(z, *priors)
        if name == reference:
            gamma, delta = np.zeros_like(gamma), np.ones_like(delta)
        gammas.append(gamma)
        deltas.append(delta)
        hyper.append(priors)
    return {
        "batches": names,
        "grand_mean": grand_mean,
        "covariate_effect": covariate_effect,
        "variance": variance,
        "gamma": np.array(gammas),
        "delta": np.array(deltas),
        "priors": np.array(hyper),
        "reference": reference or "",
    }


def apply(
    features: np.ndarray, batches: np.ndarray, params: Params, covariates: np.ndarray | None = None
) -> np.ndarray:
    """Harmonized features; batches unseen at fit time are estimated from their own rows (see module docstring)."""
    features = np.asarray(features, dtype=np.float64)
    batches = np.asarray(batches).astype(str)
    names = list(params["batches"])
    covariate_effect = np.asarray(params["covariate_effect"]).reshape(-1, features.shape[1])
    covariate_part = (
        0.0
        if covariates is None or not len(covariate_effect)
        else np.asarray(covariates, dtype=np.float64) @ covariate_effect
    )
    scale = np.sqrt(params["variance"])
    standardized = (features - params["grand_mean"] - covariate_part) / scale
    adjusted = np.empty_like(standardized)
    pooled_priors = tuple(np.asarray(params["priors"]).mean(axis=0))
    for name in np.unique(batches):
        rows = batches == name
        if name in names:
            index = names.index(name)
            gamma, delta = params["gamma"][index], params["delta"][index]
        else:
            log.warning(
                "ComBat: batch %r was not seen at fit time; estimating it from its %d image(s)", name, rows.sum()
            )
            gamma, delta = _shrink(standardized[rows], *pooled_priors)
        adjusted[rows] = (standardized[rows] - gamma) / np.sqrt(delta)
    return adjusted * scale + params["grand_mean"] + covariate_part
