"""Classifier architectures with a one-channel input, trained from scratch, split into features and a linear head.

``resnet18`` (default) and ``densenet121`` come from torchvision with their first convolution rebuilt for one channel;
``small_cnn`` is a five-block network for CPU demos. Every model is a :class:`Classifier` whose ``features`` give the
penultimate-layer embedding that `xrh features` stores and analyses.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models_ml.config import ARCHITECTURES
from models_ml.torch_setup import import_torchvision


class Classifier(nn.Module):
    """``features`` (image -> embedding) followed by ``head`` (embedding -> class logits)."""

    def __init__(self, features: nn.Module, embedding_size: int, classes: int) -> None:
        super().__init__()
        self.features = features
        self.embedding_size = embedding_size
        self.head = nn.Linear(embedding_size, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def _small_cnn() -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    channels = [1, 16, 32, 64, 128, 128]
    for c_in, c_out in zip(channels, channels[1:], strict=False):
        # BatchNorm keeps each image's global intensity and contrast, which are part of the scanner signal (GroupNorm
        # normalizes them away); its running statistics need a few hundred steps to match the batch statistics.
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), channels[-1]


def _resnet18() -> tuple[nn.Module, int]:
    network = import_torchvision().models.resnet18(weights=None)
    network.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    size = network.fc.in_features
    network.fc = nn.Identity()
    return network, size


def _densenet121() -> tuple[nn.Module, int]:
    network = import_torchvision().models.densenet121(weights=None)
    network.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    size = network.classifier.in_features
    network.classifier = nn.Identity()
    return network, size


def build_classifier(architecture: str, classes: int, weights: Path | None = None) -> Classifier:
    """A fresh classifier; ``weights`` (a local state-dict file of a :class:`Classifier`) loads pretrained weights."""
    builders = {"resnet18": _resnet18, "densenet121": _densenet121, "small_cnn": _small_cnn}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    features, size = builders[architecture]()
    model = Classifier(features, size, classes)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [key for key in missing if not key.startswith("head.")]:
            raise ValueError(f"{weights}: does not fit {architecture} (missing {missing}, unexpected {unexpected})")
    return model
