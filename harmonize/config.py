"""The powered benchmark's settings, apart from its code: the command line reads their defaults without importing
torch."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.images import Preprocessing
from models_ml.config import TrainConfig


@dataclass(frozen=True)
class BenchConfig:
    """The benchmark's settings; the defaults are the ``bench`` size's."""

    methods: tuple[str, ...] = ("none", "cdf", "fda", "bands", "physics")
    seeds: tuple[int, ...] = (0, 1, 2)
    size: int = 64
    architecture: str = "small_cnn"
    # 15 epochs with a patience of 4 stopped one seed's unharmonized scanner classifier on an early plateau at 0.818
    # while a probe of the same features read 0.995; with 25 and 8 that seed reaches 0.999.
    epochs: int = 25
    batch_size: int = 32
    patience: int = 8
    warmup_epochs: int = 2
    confounding: float = 0.9
    # The analysis image: a centred 256 mm square (inside an adult chest on every scanner, so no collimation, matrix or
    # padding is left to read), histogram-equalized (so no global statistic is either): what is left is texture.
    field_mm: float = 256.0
    equalize: bool = True

    def preprocessing(self) -> Preprocessing:
        """Equalized images take a min-max window (a percentile window's clipping would crowd whole regions into one
        value before the ranks); unequalized ones the project's default window, as every other job's."""
        window = "minmax" if self.equalize else Preprocessing.window
        return Preprocessing(size=self.size, field_mm=self.field_mm, equalize=self.equalize, window=window)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            cohort="bench",
            architecture=self.architecture,
            image_size=self.size,
            epochs=self.epochs,
            batch_size=self.batch_size,
            patience=self.patience,
            warmup_epochs=self.warmup_epochs,
            augment="none",
            seed=seed,
        )
