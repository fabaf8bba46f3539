"""Checks of class-id masks: every value a class id or ignore_index."""

from __future__ import annotations

import numpy as np

from src.data.files import DatasetError
from src.data.splits import SplitArrays


def invalid_mask_values(mask: np.ndarray, num_classes: int, ignore_index: int) -> list[int]:
    """Values in a uint8 mask that are neither a class id nor ignore_index."""
    valid = np.zeros(256, dtype=bool)
    valid[:num_classes] = True
    valid[ignore_index] = True
    values = np.unique(mask)
    return values[~valid[values]].tolist()


def looked_up(lookup: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Class ids (uint8) of a mask through a value -> id table, where -1 marks values no class has;
    and those values (empty when every pixel is known)."""
    ids = lookup[raw]
    unknown = ids < 0
    return ids.astype(np.uint8), (np.unique(raw[unknown]).tolist() if unknown.any() else [])


def index_mask_ids(lookup: np.ndarray, raw: np.ndarray, path, kind: str, coding: str) -> np.ndarray:
    """Class ids of a one-channel index mask (a `kind`, e.g. "trimap", holding `coding`) through a
    value -> id table; a DatasetError naming the file for a colour image or a value no class has."""
    if raw.ndim != 2:
        raise DatasetError(f"{path}: a {kind} is a one-channel PNG of {coding}; this one has colour channels")
    ids, bad = looked_up(lookup, raw)
    if bad:
        raise DatasetError(f"{path}: {kind} values {bad}; {coding} expected")
    return ids


def check_mask_values(split: SplitArrays, num_classes: int, ignore_index: int, where: str) -> None:
    """Fail, naming the item, when a mask holds a value that is neither a class id nor ignore_index."""
    for mask, name in zip(split.masks, split.names):
        bad = invalid_mask_values(mask, num_classes, ignore_index)
        if bad:
            raise ValueError(
                f"{where}: mask of {name!r} holds values {bad}, but data.num_classes={num_classes} "
                f"allows 0..{num_classes - 1} and {ignore_index} (ignore). Check the dataset's mask coding."
            )
