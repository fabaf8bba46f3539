"""Class weights from the training masks: SegNet's and ENet's median-frequency balancing, and
inverse frequency (``loss.class_weights=median_frequency|inverse_frequency``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

SCHEMES = ("median_frequency", "inverse_frequency")


def class_pixel_counts(masks: Iterable[np.ndarray], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of each class, pixels of the images each class occurs in), over every mask;
    ignored pixels (any value >= num_classes) count in neither."""
    pixels = np.zeros(num_classes, dtype=np.int64)
    present = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        counts = np.bincount(np.asarray(mask).ravel(), minlength=256)[:num_classes]
        pixels += counts
        present[counts > 0] += int(counts.sum())
    return pixels, present


def class_weights(scheme: str, pixels: np.ndarray, present: np.ndarray) -> list[float]:
    """``median_frequency`` (Eigen & Fergus 2015, as SegNet and ENet use it): freq(c) = pixels of c
    / pixels of the images where c occurs, weight median(freq) / freq(c). ``inverse_frequency``:
    total / (K * pixels of c), 1.0 for every class when they are balanced. A class absent from the
    training masks gets weight 0 (it is never a target)."""
    if scheme not in SCHEMES:
        raise ValueError(f"loss.class_weights must be null, a list of K numbers, or one of {SCHEMES}; got {scheme!r}")
    pixels, present = np.asarray(pixels, dtype=np.float64), np.asarray(present, dtype=np.float64)
    seen = pixels > 0
    if not seen.any():
        raise ValueError("loss.class_weights: the training masks hold no labelled pixel")
    weights = np.zeros_like(pixels)
    if scheme == "median_frequency":
        frequency = pixels[seen] / present[seen]
        weights[seen] = np.median(frequency) / frequency
    else:
        weights[seen] = pixels.sum() / (len(pixels) * pixels[seen])
    return [round(float(w), 6) for w in weights]


def cached_counts(folder: Path | None, compute) -> tuple[np.ndarray, np.ndarray]:
    """The counts stored beside a cached split (``class_pixels.json``), computed once."""
    file = folder / "class_pixels.json" if folder is not None else None
    if file is not None and file.is_file():
        stored = json.loads(file.read_text())
        return np.array(stored["pixels"]), np.array(stored["present"])
    pixels, present = compute()
    if file is not None and folder.is_dir():
        try:
            temporary = file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"pixels": pixels.tolist(), "present": present.tolist()}))
            temporary.replace(file)
        except OSError:  # a read-only cache: computing again next time is cheap
            pass
    return pixels, present
