"""A split of a dataset decoded into arrays, and the seeded way splits are drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class SplitArrays:
    """One split: images N x H x W x C uint8, masks N x H x W uint8, one name per item."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]

    def __post_init__(self):
        if not (len(self.images) == len(self.masks) == len(self.names)):
            raise ValueError(
                f"split has {len(self.images)} images, {len(self.masks)} masks and {len(self.names)} names"
            )


def seeded_split(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split sorted names into (rest, held-out fraction) the same way for the same seed."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    held = int(round(fraction * len(names)))
    held_out = {names[i] for i in order[:held]}
    return [n for n in names if n not in held_out], [n for n in names if n in held_out]
