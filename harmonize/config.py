"""The settings of the scanner judgements (the powered benchmark's and the cohort evaluation's analysis images), apart
from their code: the command line reads their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.images import Preprocessing
from models_ml.config import TrainConfig

# The analysis image of a scanner judgement: a centred 256 mm square (inside an adult chest on every scanner, so no
# collimation, matrix or padding is left to read), histogram-equalized (so no global statistic is either): what is left
# is texture.
ANALYSIS_FIELD_MM = 256.0


def field_preprocessing(size: int, field_mm: float = ANALYSIS_FIELD_MM, *, equalize: bool = True) -> Preprocessing:
    """The analysis images of ``size`` pixels over a centred ``field_mm`` square (0: the whole frame). Equalized images
    take a min-max window (a percentile window's clipping would crowd whole regions into one value before the ranks);
    unequalized ones the project's default window, as every other job's."""
    window = "minmax" if equalize else Preprocessing.window
    return Preprocessing(size=size, field_mm=field_mm, equalize=equalize, window=window)


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
    field_mm: float = ANALYSIS_FIELD_MM
    equalize: bool = True

    def preprocessing(self) -> Preprocessing:
        return field_preprocessing(self.size, self.field_mm, equalize=self.equalize)

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
