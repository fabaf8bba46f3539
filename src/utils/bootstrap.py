"""Bootstrap intervals over test images, from a run's images/per_image.csv.

A score is either the mean of a per-image column (``dice`` is "Dice per image") or, for
``miou``, the dataset-level mean IoU: each class's summed intersection over its summed union
(classes absent from the resample left out), recomputed for every resample, so the interval is
that of the number the run reports. Paired comparisons resample the same images for both runs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESAMPLES = 2000


@dataclass
class PerImage:
    names: list[str]
    columns: dict[str, np.ndarray]  # column -> values, one per image (NaN where empty)

    def score(self, metric: str, rows: np.ndarray | None = None) -> np.ndarray | float:
        """``metric`` over the images (all of them, or each row of ``rows``: resampled indices)."""
        if metric == "miou":
            inter = np.stack([v for k, v in self.columns.items() if k.startswith("inter_")], axis=1)
            union = np.stack([v for k, v in self.columns.items() if k.startswith("union_")], axis=1)
            if rows is None:
                return float(_nan_mean_ratio(inter.sum(0, keepdims=True), union.sum(0, keepdims=True))[0])
            return _nan_mean_ratio(inter[rows].sum(1), union[rows].sum(1))
        values = self.columns[metric]
        return float(np.nanmean(values)) if rows is None else np.nanmean(values[rows], axis=1)

    def has(self, metric: str) -> bool:
        return any(k.startswith("inter_") for k in self.columns) if metric == "miou" else metric in self.columns


def _nan_mean_ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan), axis=1)


def read_per_image(path: Path) -> PerImage:
    """A per_image.csv (or the run folder holding images/per_image.csv)."""
    path = Path(path)
    if path.is_dir():
        path = path / "images" / "per_image.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-image results (src.train and src.eval write images/per_image.csv for segmentation runs)")
    with path.open() as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise ValueError(f"{path}: no images")
    names = [row["name"] for row in rows]
    columns = {key: np.array([float(row[key]) if row[key] != "" else np.nan for row in rows]) for key in rows[0] if key != "name"}
    return PerImage(names, columns)


def resample_indices(count: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap values."""
    low, high = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def score_interval(results: PerImage, metric: str, seed: int = 0) -> tuple[float, float, float]:
    """(score, low, high): the score over all images and its 95 % bootstrap interval."""
    rows = resample_indices(len(results.names), seed=seed)
    return (results.score(metric), *interval(results.score(metric, rows)))


@dataclass
class Comparison:
    metric: str
    images: int
    score_a: float
    score_b: float
    difference: float  # b - a on the same images
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 0.0 <= self.high

    def sentence(self, name_a: str, name_b: str) -> str:
        verdict = ("within noise: the 95 % interval includes 0, so these test images do not tell the runs apart"
                   if self.within_noise else f"{'B' if self.difference > 0 else 'A'} is better beyond noise (the 95 % interval excludes 0)")  # fmt: skip
        return (f"{self.metric} on {self.images} paired test images: A {self.score_a:.4f} ({name_a}), B {self.score_b:.4f} "
                f"({name_b}); B - A = {self.difference:+.4f}, 95 % paired-bootstrap interval [{self.low:+.4f}, {self.high:+.4f}]: {verdict}")  # fmt: skip


def paired_comparison(a: PerImage, b: PerImage, metric: str, seed: int = 0, resamples: int = RESAMPLES) -> Comparison:
    """B - A on the images both runs scored, with the same resampled images for both."""
    if not (a.has(metric) and b.has(metric)):
        raise ValueError(f"{metric}: not in both runs' per_image.csv")
    shared = sorted(set(a.names) & set(b.names))
    if not shared:
        raise ValueError("the two runs share no test image (per_image.csv names): compare runs on the same test split")
    order_a = np.array([a.names.index(n) for n in shared])
    order_b = np.array([b.names.index(n) for n in shared])
    a = PerImage(shared, {k: v[order_a] for k, v in a.columns.items()})
    b = PerImage(shared, {k: v[order_b] for k, v in b.columns.items()})
    rows = resample_indices(len(shared), resamples, seed)
    differences = b.score(metric, rows) - a.score(metric, rows)
    score_a, score_b = a.score(metric), b.score(metric)
    return Comparison(metric, len(shared), score_a, score_b, score_b - score_a, *interval(differences))
