"""torch and torchvision as this project uses them: the CPU/CUDA torchvision mismatch, device choice and what each
device gets (loader workers, pinned memory, mixed precision), seeding.

PyPI's torchvision 0.28.0 wheel is built for CUDA; with the CPU build of torch its compiled operators do not load and
``import torchvision`` fails with "operator torchvision::nms does not exist". Only in that combination, the two
operator schemas it needs at import time (``nms`` and ``qnms``) are defined here with a small pure-PyTorch
non-maximum suppression, which is enough for the models and transforms this project uses. A GPU installation, where
torch is a CUDA build, is left untouched.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import re
from functools import cache
from pathlib import Path

import numpy as np
import torch

from xrh.settings import device_name

log = logging.getLogger(__name__)


def _torchvision_build() -> str:
    """The local version tag of the installed torchvision (``cu130``, ``cpu`` or '') without importing it."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return ""
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    match = re.search(r"__version__ = '[^'+]*\+?([^']*)'", version_file.read_text()) if version_file.exists() else None
    return match.group(1) if match else ""


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression over (x1, y1, x2, y2) boxes; indices of the kept boxes by falling score."""
    order = scores.argsort(descending=True)
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        overlap = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        iou = overlap / (areas[best] + areas[rest] - overlap)
        order = rest[iou <= iou_threshold]
    return torch.stack(keep) if keep else torch.empty(0, dtype=torch.long)


_library = None


@cache
def import_torchvision():
    """``torchvision``, importable with the CPU torch (see the module docstring)."""
    global _library
    if torch.version.cuda is None and _torchvision_build().startswith("cu"):
        _library = torch.library.Library("torchvision", "DEF")
        for name in ("nms", "qnms"):
            _library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _library.impl(name, _nms, "CPU")
    import torchvision

    return torchvision


def choose_device(setting: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device (``cpu``, ``cuda``, ``cuda:N``), which must
    exist here (a ValueError that says what to set otherwise)."""
    device = _named_device(setting)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    log.info("computing on %s (%s)", device, name)
    return device


def _named_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device_name(setting))
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            build = "this torch build has no CUDA" if torch.version.cuda is None else f"{count} CUDA devices found"
            raise ValueError(f"device setting {setting!r}, but {build}; set XRH_DEVICE=auto or cpu")
    return device


def loader_options(device: torch.device, *, every_epoch: bool = False) -> dict[str, object]:
    """DataLoader options for ``device``. On CUDA, worker processes read the next batches from the image cache into
    pinned memory while the GPU computes (kept between epochs for loaders read ``every_epoch``); on the CPU loading
    stays in this process, whose cores do the computing."""
    if device.type != "cuda":
        return {}
    return {"num_workers": min(8, os.cpu_count() or 1), "pin_memory": True, "persistent_workers": every_epoch}


def mixed_precision(device: torch.device):
    """float16 autocast on CUDA (tensor cores), a no-op on the CPU, where float32 is kept for reproducible results."""
    return torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
