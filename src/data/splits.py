"""A split of a dataset decoded into arrays, and the seeded way splits are drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from src.data.files import DatasetError

SPLITS = ("train", "val", "test")


class RaggedArrays:
    """N uint8 arrays of different shapes in one flat buffer (memory-mapped from the cache):
    indexing gives the i-th array, as indexing an N x ... array gives its i-th row."""

    def __init__(self, flat: np.ndarray, shapes: np.ndarray):
        self.flat, self.shapes = flat, np.asarray(shapes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(np.prod(self.shapes, axis=1))])

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> np.ndarray:
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.flat[start:end].reshape(self.shapes[index])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass
class SplitArrays:
    """One split: images (N x H x W x C uint8, or RaggedArrays of H_i x W_i x C), masks (N x H x W
    uint8, or ragged), one name per item."""

    images: np.ndarray | RaggedArrays
    masks: np.ndarray | RaggedArrays
    names: list[str]

    def __post_init__(self):
        if not (len(self.images) == len(self.masks) == len(self.names)):
            raise ValueError(
                f"split has {len(self.images)} images, {len(self.masks)} masks and {len(self.names)} names"
            )


def seeded_split(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split sorted names into (rest, held-out fraction) the same way for the same seed; a fraction
    above 0 of two or more names holds out at least one."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    held = int(round(fraction * len(names)))
    if fraction > 0 and held == 0 and len(names) > 1:  # a fraction of a few pairs still holds one out
        held = 1
    held_out = {names[i] for i in order[:held]}
    return [n for n in names if n not in held_out], [n for n in names if n in held_out]


# Where a split made from another takes its items: val from train, test from val (or from all).
SOURCES = {"train": ("train", "all"), "val": ("val", "train", "all"), "test": ("test", "val", "train", "all")}


def completed_split_items(found: dict[str, dict], seed: int, val_fraction: float, test_fraction: float, hint: str) -> dict[str, list]:
    """completed_splits of ``{split: {name: item}}``: each split's items, in name order."""
    names = completed_splits({split: list(items) for split, items in found.items()}, seed, val_fraction, test_fraction, hint)
    return {split: [next(found[s][n] for s in SOURCES[split] if n in found.get(s, {})) for n in split_names]
            for split, split_names in names.items()}  # fmt: skip


def completed_splits(given: dict[str, list[str]], seed: int, val_fraction: float, test_fraction: float, hint: str) -> dict[str, list[str]]:
    """train/val/test names from what a dataset gives: ``{"all": names}`` (nothing split: a seeded
    ``test_fraction`` is held out, then ``val_fraction`` of the rest), or named splits, a missing val
    split being a seeded ``val_fraction`` of train and a missing test split the val one. ``hint`` says
    where else a split can come from (in the errors)."""

    def held_out(names: list[str], key: str, fraction: float) -> tuple[list[str], list[str]]:
        kept, taken = seeded_split(names, fraction, seed)
        split = key.removesuffix("_fraction")
        if names and not taken:
            raise DatasetError(f"data.{key}={fraction} leaves no {split} pairs of {len(names)}: set it between 0 and 1 "
                               f"(e.g. 0.1), or give the {split} split as {hint.format(split=split)}")  # fmt: skip
        if names and not kept:
            raise DatasetError(f"data.{key}={fraction} takes all {len(names)} pairs for {split}, leaving none to train on: "
                               "set it between 0 and 1 (e.g. 0.1)")  # fmt: skip
        return kept, taken

    splits = dict(given)
    if "all" in splits:
        splits["train"], splits["test"] = held_out(splits.pop("all"), "test_fraction", test_fraction)
    if "val" not in splits:
        splits["train"], splits["val"] = held_out(splits["train"], "val_fraction", val_fraction)
    splits.setdefault("test", splits["val"])
    return splits
