"""CIFAR-10 colourisation: the grey image in, each pixel's nearest palette colour as the target.

Reads the python batches (cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta). The
palette is ``num_colours`` colours found by k-means over training pixels, computed once and
cached beside the data together with the decoded splits. train/val are a seeded split of the
training batches; test is test_batch.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from src.data.cache import cache_dir as cache_dir_of
from src.data.cache import cached_split
from src.data.datamodule import SegmentationDataModule
from src.data.download import download_with_hint
from src.data.files import DatasetError, require_dir
from src.data.splits import SplitArrays, seeded_split

TRAIN_BATCHES = [f"data_batch_{k}" for k in range(1, 6)]


def read_batch(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 batch not found: {path}. Set data.root to cifar-10-batches-py, or data.download=true")
    try:
        with open(path, "rb") as file:
            # CIFAR's own format is a pickle of plain arrays; it is read only from the user's data folder.
            return pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({error})") from None


def kmeans_colours(pixels: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """k colours (uint8 k x 3) minimising squared RGB distance to the pixels (Lloyd's algorithm)."""
    rng = np.random.default_rng(seed)
    pixels = pixels.astype(np.float32)
    centres = pixels[rng.choice(len(pixels), size=k, replace=False)]
    for _ in range(iterations):
        labels = nearest_colour(pixels, centres)
        for j in range(k):
            members = pixels[labels == j]
            centres[j] = members.mean(axis=0) if len(members) else pixels[rng.integers(len(pixels))]
    return np.clip(np.round(centres), 0, 255).astype(np.uint8)


def nearest_colour(pixels: np.ndarray, palette: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Index of the nearest palette colour for each of N x 3 pixels."""
    palette = palette.astype(np.float32)
    out = np.empty(len(pixels), dtype=np.uint8)
    for start in range(0, len(pixels), chunk):
        block = pixels[start : start + chunk].astype(np.float32)
        distances = (block**2).sum(1, keepdims=True) - 2 * block @ palette.T + (palette**2).sum(1)
        out[start : start + chunk] = distances.argmin(1)
    return out


class CifarColourDataModule(SegmentationDataModule):
    def __init__(
        self,
        root: str,
        classes: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        palette_pixels: int = 200_000,
        download: bool = False,
        cache_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.classes = list(classes) if classes else None
        self.val_fraction = val_fraction
        self.palette_pixels = palette_pixels
        self.download = download
        self.cache_dir = cache_dir_of(self.root, cache_dir)
        self.class_names = [f"colour_{k}" for k in range(self.num_classes)]
        self._kmeans_palette: np.ndarray | None = None

    def prepare_data(self) -> None:
        if self.download and not (self.root / "batches.meta").is_file():
            from torchvision.datasets import CIFAR10

            download_with_hint(lambda: CIFAR10(self.root.parent, download=True), "CIFAR-10", self.root,
                               "data_batch_1..5, test_batch and batches.meta")  # fmt: skip

    def _images(self, batches: list[str]) -> tuple[np.ndarray, list[str]]:
        require_dir(self.root, "CIFAR-10 folder", "Set data.root to cifar-10-batches-py, or data.download=true.")
        label_names = [n.decode() for n in read_batch(self.root / "batches.meta")[b"label_names"]]
        if self.classes:
            unknown = sorted(set(self.classes) - set(label_names))
            if unknown:
                raise ValueError(f"data.classes has {unknown}, not CIFAR-10 classes; choose from {label_names}")
        images, names = [], []
        for batch_name in batches:
            batch = read_batch(self.root / batch_name)
            data, labels = np.asarray(batch[b"data"], dtype=np.uint8), batch[b"labels"]
            keep = [i for i, label in enumerate(labels) if not self.classes or label_names[label] in self.classes]
            images.append(data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            names += [batch[b"filenames"][i].decode() for i in keep]
        return np.concatenate(images), names

    def _key(self, *parts) -> str:
        stats = [(b, (self.root / b).stat().st_size, (self.root / b).stat().st_mtime_ns) for b in TRAIN_BATCHES + ["test_batch"]
                 if (self.root / b).exists()]  # fmt: skip
        text = json.dumps([stats, self.classes, self.num_classes, self.seed, self.palette_pixels, *parts])
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def palette(self) -> np.ndarray:
        """The num_colours k-means colours: class k of a mask is colour k."""
        if self._kmeans_palette is None:
            path = self.cache_dir / f"cifar_palette-{self._key()}.npy"
            if not path.is_file():
                pixels, _ = self._images(TRAIN_BATCHES)
                pixels = pixels.reshape(-1, 3)
                sample = np.random.default_rng(self.seed).choice(len(pixels), min(self.palette_pixels, len(pixels)), replace=False)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, kmeans_colours(pixels[sample], self.num_classes, self.seed))
            self._kmeans_palette = np.load(path)
        return self._kmeans_palette

    def load_split(self, split: str) -> SplitArrays:
        folder = self.cache_dir / f"cifar_colour-{split}-{self.image_size}-{self._key(split, self.val_fraction)}"
        return cached_split(folder, lambda staging: self._write_split(staging, split))

    def _write_split(self, staging: Path, split: str) -> None:
        """Grey images and colour-class masks of one split, decoded from the batches."""
        if split == "test":
            images, names = self._images(["test_batch"])
        else:
            images, names = self._images(TRAIN_BATCHES)
            train, val = seeded_split(names, self.val_fraction, self.seed)
            keep = set(train if split == "train" else val)
            index = [i for i, name in enumerate(names) if name in keep]
            images, names = images[index], [names[i] for i in index]
        if self.image_size != 32:
            images = np.stack([cv2.resize(im, (self.image_size,) * 2, interpolation=cv2.INTER_CUBIC) for im in images])
        masks = nearest_colour(images.reshape(-1, 3), self.palette).reshape(images.shape[:3])
        grey = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])[..., None]
        np.save(staging / "images.npy", grey)
        np.save(staging / "masks.npy", masks)
        (staging / "names.json").write_text(json.dumps(names))
