"""What a training run is configured with: plain dataclasses and names, no torch, so the command line and the flows
read the defaults without importing the training code (about 400 MiB and seconds of start-up)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

ARCHITECTURES = ("resnet18", "densenet121", "small_cnn")
# Each architecture halves its input five times before pooling: a smaller side leaves no pixel to pool.
MIN_IMAGE_SIZE = 32
AUGMENTATIONS = ("none", "geometric", "strong")


@dataclass(frozen=True)
class TrainConfig:
    cohort: str
    target: str = "label"
    architecture: str = "resnet18"
    image_size: int = 224
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    warmup_epochs: int = 10
    augment: str = "geometric"
    split_scheme: str = "standard"
    split_seed: int = 0
    seed: int = 0
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"image size {self.image_size} is too small: the classifiers halve it five times; "
                f"use at least {MIN_IMAGE_SIZE} pixels"
            )

    def parameters(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_stored(cls, stored: Mapping[str, object]) -> TrainConfig:
        """A configuration from a run's stored hyperparameters, by field name: a field added since the run was made
        takes its default, a field since removed is left out, so old runs stay loadable."""
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in stored.items() if name in known})
