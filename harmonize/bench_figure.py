"""The powered benchmark's figure: per method, how much scanner is left, how close each arm comes to the reference
rendering, and what happens to the diagnostic experiments; means over seeds with the mean 95% bootstrap interval."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# (experiment, metric, label) of each panel's bars.
SCANNER_BARS = (
    ("scanner", "retrained_balanced_accuracy", "D110 vs S120"),
    ("texture", "retrained_balanced_accuracy", "D110 vs S120T (S120's beam and detector, D110's processing)"),
)
# (arm, label) of the fidelity panels' bars: the arms, then the ceilings (noise only; distance only).
FIDELITY_ARMS = (
    ("S120", "S120"),
    ("S120T", "S120T"),
    ("D90PA", "D90PA"),
    ("HP", "HP"),
    ("D110R", "D110R: new noise (ceiling)"),
    ("D110atD90PA", "D110 at D90PA's distance (D90PA's ceiling)"),
    ("D110atHP", "D110 at HP's distance (HP's ceiling)"),
)
DIAGNOSTIC_BARS = (
    ("shift", "auc_gap", "AUC gap, D110 to D90PA"),
    ("shift", "auc_gap_D110atD90PA", "AUC gap, D110 to D110 at D90PA's distance (geometry alone)"),
    ("confounded", "shortcut", "shortcut, confounded design"),
    ("confounded_geometry", "shortcut", "shortcut, its geometry twin (the distance alone)"),
    ("null", "auc_gap", "AUC gap, negative control"),
)


def _summary(rows: list[dict], method: str, experiment: str, metric: str) -> tuple[float, float, float] | None:
    """Mean over seeds of the value and of its interval's ends (the value itself where there is no interval)."""
    chosen = [r for r in rows if (r["method"], r["experiment"], r["metric"]) == (method, experiment, metric)]
    if not chosen:
        return None
    value = float(np.mean([r["value"] for r in chosen]))
    low = float(np.mean([r["ci_low"] if r["ci_low"] is not None else r["value"] for r in chosen]))
    high = float(np.mean([r["ci_high"] if r["ci_high"] is not None else r["value"] for r in chosen]))
    return value, low, high


def _bars(axis, rows, methods, series, width=0.8):
    """Grouped bars: one group per method, one bar per series ``(experiment, metric, label)``, with intervals."""
    step = width / len(series)
    for index, (experiment, metric, label) in enumerate(series):
        found = [(m, _summary(rows, m, experiment, metric)) for m in methods]
        found = [(position, s) for position, (_, s) in enumerate(found) if s is not None]
        if not found:
            continue
        x = np.array([position for position, _ in found]) - width / 2 + (index + 0.5) * step
        values = np.array([s[0] for _, s in found])
        errors = np.array([[s[0] - s[1] for _, s in found], [s[2] - s[0] for _, s in found]])
        axis.bar(x, values, step, yerr=np.clip(errors, 0, None), capsize=2, label=label)
    axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axis.set_xlabel("method")


def _fidelity_bars(metric: str) -> list[tuple[str, str, str]]:
    return [("fidelity", f"{metric}_{arm}_vs_D110", label) for arm, label in FIDELITY_ARMS]


def write_bench_figure(rows: list[dict], path: Path) -> Path:
    """A four-panel PNG of the bench's rows (``harm_bench``): scanner left, SSIM and PSNR per arm, diagnostic."""
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "combat"))
    seeds = len({r["seed"] for r in rows})
    phantoms = max((r.get("test_phantoms") or 0) for r in rows)
    figure, axes = plt.subplots(1, 4, figsize=(21, 6.2))
    _bars(axes[0], rows, methods, SCANNER_BARS)
    axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
    axes[0].set_ylim(0.4, 1.02)
    axes[0].set_ylabel("retrained scanner classifier, balanced accuracy")
    axes[0].set_title("Scanner left after harmonization (lower is better)")
    _bars(axes[1], rows, methods, _fidelity_bars("ssim"))
    axes[1].axhline(0.95, color="black", linewidth=0.8, linestyle="--", label="target 0.95")
    axes[1].set_ylim(0.4, 1.02)
    axes[1].set_ylabel("SSIM against the D110 rendering")
    axes[1].set_title("Fidelity to the reference rendering, SSIM")
    _bars(axes[2], rows, methods, _fidelity_bars("psnr_db"))
    axes[2].axhline(35, color="black", linewidth=0.8, linestyle="--", label="target 35 dB")
    axes[2].set_ylabel("PSNR against the D110 rendering (dB)")
    axes[2].set_title("Fidelity to the reference rendering, PSNR")
    _bars(axes[3], rows, methods, DIAGNOSTIC_BARS)
    axes[3].axhline(0, color="black", linewidth=0.8)
    axes[3].set_ylabel("AUC difference / mean score difference")
    axes[3].set_title("Diagnostic experiments (closer to 0 is better)")
    for axis in axes:  # below each panel, clear of the bars
        axis.legend(
            fontsize=7,
            title="arm" if axis in axes[1:3] else None,
            title_fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.22),
            ncol=2 if axis in axes[1:3] else 1,
        )
    figure.suptitle(
        f"Powered benchmark on paired renderings: {phantoms} test phantoms, mean of {seeds} seed(s); "
        "bars: mean 95% bootstrap interval over test phantoms",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
