"""Power-law random fields: the anatomical background that fills lung parenchyma and soft tissue.

Real anatomical backgrounds have a power spectrum that falls as ``1/f^beta`` (Burgess, Jacobson and Judy, "Human
observer detection experiments with mammograms and power-law noise", Med. Phys. 28 (2001): beta about 3 for projected
breast tissue; the same estimator on a real chest radiograph is in ``benchmarks/realism.py``). A field here is a
Gaussian random field with that spectrum, made once per patient on a fixed physical grid, so the same patient has the
same texture on every scanner, grid and view, and sampled at any pixel's position in cm.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FIELD_PIXELS = 512
FIELD_SPACING_CM = 0.1  # 51.2 cm square: any detector's field of view, at 1 mm (finer detail is the vessels' and noise)
LONGEST_SCALE_CM = 12.0  # below this frequency the spectrum is flat: the anatomy's larger structures are explicit


@lru_cache(maxsize=8)
def power_law_field(seed: int, beta: float) -> np.ndarray:
    """A zero-mean, unit-variance field of ``FIELD_PIXELS``^2 at ``FIELD_SPACING_CM`` with power ``~ 1/f^beta``."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((FIELD_PIXELS, FIELD_PIXELS))
    f = np.fft.fftfreq(FIELD_PIXELS, d=FIELD_SPACING_CM)
    radius = np.hypot(f[:, None], f[None, : FIELD_PIXELS // 2 + 1])
    amplitude = np.maximum(radius, 1.0 / LONGEST_SCALE_CM) ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    field = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=white.shape)
    field = (field / field.std()).astype(np.float32)
    field.setflags(write=False)  # cached: the same patient on several units shares it
    return field


def sample_field(field: np.ndarray, v_cm: np.ndarray, u_cm: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``field`` (centred on the origin, wrapping round) on the grid of rows at ``v_cm`` (down) and
    columns at ``u_cm`` (across): a ``(len(v_cm), len(u_cm))`` image, interpolated one axis at a time."""
    centre = (FIELD_PIXELS - 1) / 2

    def weights(positions_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = np.ravel(positions_cm) / FIELD_SPACING_CM + centre
        lower = np.floor(index).astype(int)
        return lower % FIELD_PIXELS, (lower + 1) % FIELD_PIXELS, (index - lower).astype(np.float32)

    r0, r1, wr = weights(v_cm)
    c0, c1, wc = weights(u_cm)
    rows = field[r0] * (1 - wr)[:, None] + field[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None, :] + rows[:, c1] * wc[None, :]
