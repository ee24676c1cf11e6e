"""A learned bone estimate for energy matching: a small U-Net that reads one analysis image and estimates its bone
component, trained from scratch on the stand-in's paired renderings only, its weights plain arrays.

Energy matching (:mod:`harmonize.scanners`, stage ``energy``) brings an image's bone-to-soft-tissue contrast to the
reference beam's by adding ``(g - 1) b``, with ``b`` the image's bone component and ``g`` the ratio of the two
scanners' bone contrasts. One projection does not separate bone from soft tissue (that is what dual-energy imaging
measures), so ``b`` is estimated, as bone-suppression networks do (Gusarev et al., "Deep learning models for bone
suppression in chest radiographs", IEEE CIBCB 2017; Rajaraman et al., "Chest X-ray bone suppression for improving
classification of tuberculosis-consistent findings", Diagnostics 11, 2021), by a U-Net (Ronneberger et al.,
"U-Net: convolutional networks for biomedical image segmentation", MICCAI 2015) whose targets are the difference
between an image and its bone-free twin. No such pairs exist for real radiographs without dual energy, so the pairs
come from the simulator's bench set (arms ``D110clean`` and ``D110boneless``: the same phantom without quantum noise,
with and without its bone), and the input is the noisy D110 rendering of the same phantom.

The estimate works in the analysis domain of the powered benchmark (a centred field in millimetres, resized to a few
millimetres a pixel, rank-equalized): coarse enough that what it estimates is ribs, clavicles and spine, not noise.
:func:`carried_back` takes a change made there back to an image's own pixel values, so that the stage hands on an
image, not an analysis image.

The fitted state is plain arrays (:func:`train_bone_model` returns them under :data:`PREFIX`, with the analysis domain
it was trained in), so it is stored in the warehouse with the parameters of the method that uses it and reloaded
exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from harmonize.common import BONE_PREFIX as PREFIX
from harmonize.common import Params, threads
from harmonize.config import field_preprocessing
from ingest.images import Preprocessing, analysis_image, analysis_layout, equalize
from xrh.progress import track

WIDTH = 16
# 20 epochs over the bench's 1,000 training phantoms: 1,260 steps, more than the 800 that reached 71% on 320.
EPOCHS = 20
BATCH_SIZE = 16
LEARNING_RATE = 2e-3


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """Two poolings, ``width``, 2x and 4x channels, skip connections; one output channel (about 117,000 weights at
    width 16). Its input's sides must be multiples of 4."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.down1, self.down2, self.bottom = _block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        self.up2, self.merge2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), _block(4 * width, 2 * width)
        self.up1, self.merge1 = nn.ConvTranspose2d(2 * width, width, 2, 2), _block(2 * width, width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        first = self.down1(images)
        second = self.down2(nn.functional.max_pool2d(first, 2))
        bottom = self.bottom(nn.functional.max_pool2d(second, 2))
        second = self.merge2(torch.cat([self.up2(bottom), second], 1))
        return self.out(self.merge1(torch.cat([self.up1(second), first], 1)))


def standardized(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image less its mean, over its SD; and the SDs (the target is scaled by its input's)."""
    images = np.asarray(images, dtype=np.float32)
    mean, spread = images.mean(axis=(1, 2), keepdims=True), images.std(axis=(1, 2), keepdims=True)
    spread = np.maximum(spread, 1e-6)
    return (images - mean) / spread, spread


@contextmanager
def _torch_threads(count: int):
    """torch on ``count`` threads inside, as it was after (a worker process shares the machine with others)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_bone_model(
    inputs: np.ndarray,
    targets: np.ndarray,
    preprocessing: Preprocessing,
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
) -> Params:
    """The bone model trained on (images, size, size) noisy analysis ``inputs`` and their bone components
    ``targets`` (each input's clean rendering less its bone-free twin's, in the same analysis domain): MSE on
    standardized images, Adam with a cosine schedule, batches of ``BATCH_SIZE``, random left-right flips; seeded.

    Returns the weights as float32 arrays under ``PREFIX`` and the analysis domain (``bone.size``, ``bone.field_mm``)
    the stage must read images in.

    Raises
    ------
    ValueError
        If the arrays do not pair up, or the preprocessing is not an equalized field a U-Net can read.
    """
    inputs, targets = np.asarray(inputs, dtype=np.float32), np.asarray(targets, dtype=np.float32)
    if inputs.shape != targets.shape or inputs.ndim != 3 or len(inputs) == 0:
        raise ValueError(f"bone model: inputs {inputs.shape} and targets {targets.shape} must be equal (n, h, w)")
    if not preprocessing.equalize or not preprocessing.field_mm or preprocessing.size % 4:
        raise ValueError(f"bone model: needs an equalized field whose size is a multiple of 4, got {preprocessing}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = UNet()
    optimizer = torch.optim.Adam(network.parameters(), LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    scaled, spread = standardized(inputs)
    x, y = torch.from_numpy(scaled[:, None]), torch.from_numpy((targets / spread)[:, None])
    for _ in track(range(epochs), epochs, f"training the bone model on {len(x)} images", unit="epochs"):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            batch, truth = x[index], y[index]
            if torch.rand(1, generator=generator) < 0.5:
                batch, truth = batch.flip(-1), truth.flip(-1)
            loss = ((network(batch) - truth) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    weights = {PREFIX + name: value.detach().numpy().copy() for name, value in network.state_dict().items()}
    return {**weights, f"{PREFIX}size": preprocessing.size, f"{PREFIX}field_mm": float(preprocessing.field_mm)}


def bone_preprocessing(model: Params) -> Preprocessing:
    """The analysis domain the bone model reads."""
    return field_preprocessing(int(model[f"{PREFIX}size"]), float(model[f"{PREFIX}field_mm"]))


def _network(model: Params) -> UNet:
    network = UNet()
    state = {
        name: torch.from_numpy(np.asarray(model[PREFIX + name], dtype=np.float32)) for name in network.state_dict()
    }
    network.load_state_dict(state)
    return network.eval()


def estimate_bone(model: Params, images: np.ndarray) -> np.ndarray:
    """The bone component of each (images, size, size) analysis image, in the images' units, on
    :func:`harmonize.common.threads` torch threads."""
    scaled, spread = standardized(images)
    with _torch_threads(threads()), torch.no_grad():
        estimated = _network(model)(torch.from_numpy(scaled[:, None]))[:, 0].numpy()
    return estimated * spread


def explained_share(truth: np.ndarray, estimated: np.ndarray) -> np.ndarray:
    """Per image, the share of the true bone component the estimate explains, ``1 - |b - e|^2 / |b|^2``."""
    axes = tuple(range(1, np.ndim(truth)))
    return 1.0 - np.sum((truth - estimated) ** 2, axis=axes) / np.maximum(np.sum(truth**2, axis=axes), 1e-12)


def field_analysis(
    values: np.ndarray, spacing_mm: tuple[float, float], preprocessing: Preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """The analysis image of ``values`` (as :func:`ingest.images.analysis_image` makes it) and its content before
    equalization, from one window and resize: what the bone estimate reads, and what :func:`carried_back` starts
    from."""
    _, _, content_rows, content_cols = analysis_layout(values.shape, preprocessing, spacing_mm)
    unequalized = analysis_image(values, replace(preprocessing, equalize=False), spacing_mm)[content_rows, content_cols]
    analysed = np.zeros((preprocessing.size, preprocessing.size), dtype=np.float32)
    analysed[content_rows, content_cols] = equalize(unequalized)
    return analysed, unequalized


def _bilinear(length: int, samples: int) -> np.ndarray:
    """The (length, samples) matrix that interpolates ``samples`` pixel-centred values linearly onto ``length``
    pixels spanning the same extent (edges held)."""
    source = np.clip((np.arange(length) + 0.5) * samples / length - 0.5, 0, samples - 1)
    lower = np.minimum(source.astype(np.intp), max(samples - 2, 0))
    weight = (source - lower).astype(np.float32)
    matrix = np.zeros((length, samples), dtype=np.float32)
    matrix[np.arange(length), lower] = 1 - weight
    matrix[np.arange(length), np.minimum(lower + 1, samples - 1)] += weight
    return matrix


def carried_back(
    values: np.ndarray,
    spacing_mm: tuple[float, float],
    change: np.ndarray,
    preprocessing: Preprocessing,
    *,
    unequalized: np.ndarray | None = None,
) -> np.ndarray:
    """``values`` (float32) changed so that their analysis image (``preprocessing``: a centred field, min-max window,
    rank-equalized) becomes, as nearly as it can, the analysis image plus ``change`` (equalized units, one value per
    analysis pixel); ``unequalized``: :func:`field_analysis`'s second part, where it is already made.

    An analysis image is always flat-histogram, so what can be reached is the ranks of the intended image. Each
    analysis pixel is given the value that holds its intended rank in the image's own distribution (so the window and
    the histogram stay the image's), and the change of value, in the window's units, is interpolated bilinearly onto
    the field's full-resolution pixels: the estimate is smooth at the analysis pixel's scale, so nothing finer is
    invented. Where the field is larger than the image, only the image's part of the analysis image counts.
    """
    rows, cols, content_rows, content_cols = analysis_layout(values.shape, preprocessing, spacing_mm)
    if unequalized is None:
        unequalized = field_analysis(values, spacing_mm, preprocessing)[1]
    intended = equalize(equalize(unequalized) + change[content_rows, content_cols])
    ordered = np.sort(unequalized.ravel())
    reached = ordered[np.rint(intended * ordered.size - 0.5).astype(int)]
    field = values[rows, cols]
    value_change = ((reached - unequalized) * float(field.max() - field.min())).astype(np.float32)
    # Two small products (rows, then columns) rather than an image resize: no full-size copy out of another library.
    upsampled = (
        _bilinear(field.shape[0], value_change.shape[0])
        @ value_change
        @ _bilinear(field.shape[1], value_change.shape[1]).T
    )
    changed = values.astype(np.float32, copy=True)
    changed[rows, cols] += upsampled
    return changed
