"""Datasets read from image and mask files on disk: the base of pets, voc and satellite.

Decoding a JPEG and resizing it every epoch wastes the CPU, so each split is decoded and
resized once into uint8 arrays (src/data/cache.py: ``<cache_dir>/<dataset>-<split>-<size>-<key>/``,
memory-mapped when read) and every epoch augments from them. The key hashes the dataset, split,
size, mask coding and every file's path, size and modification time, so a changed file rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from src.data.cache import cache_dir as cache_dir_of
from src.data.cache import RaggedWriter, cached_split
from src.data.datamodule import SegmentationDataModule
from src.data.files import RESIZE_POLICIES, DatasetError, Sample, read_image, read_raw_mask, resize_by_policy, resize_pair
from src.data.items import SegmentationItems
from src.data.masks import invalid_mask_values
from src.data.splits import SplitArrays


class FileSegmentationDataModule(SegmentationDataModule):
    """Base for datasets on disk. Subclasses list each split's samples and decode one mask into
    class ids; this class reads, checks, resizes, caches and serves them."""

    name = "files"

    def __init__(
        self,
        root: str,
        cache: bool = True,
        cache_dir: str | None = None,
        decode_workers: int = 4,
        resize: str = "square",
        eval_resolution: str = "resized",
        **kwargs,
    ):
        """``resize``: square | short_side | none (src.data.files.policy_size), applied when a split
        is decoded; ``eval_resolution``: resized | original: the test split's masks as stored, so
        that test scores count each image's own pixels (logits are resized to them)."""
        super().__init__(**kwargs)
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"data.resize must be one of {RESIZE_POLICIES}, got {resize!r}")
        if eval_resolution not in ("resized", "original"):
            raise ValueError(f"data.eval_resolution must be 'resized' or 'original', got {eval_resolution!r}")
        self.resize, self.eval_resolution = resize, eval_resolution
        self.root = Path(root).expanduser()
        self.cache = cache
        self.cache_dir = cache_dir_of(self.root, cache_dir)
        self.decode_workers = decode_workers
        self._split_folders: dict[str, Path] = {}

    def split_folder(self, split: str) -> Path | None:
        return self._split_folders.get(split) if self.cache else None

    # --- what a dataset says -------------------------------------------------------------
    def list_split(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Class ids (uint8, ignore_index for ignored pixels) from a mask as stored."""
        raise NotImplementedError

    def raw_mask(self, path: Path) -> np.ndarray:
        """A mask file as stored (src.data.files.read_raw_mask)."""
        return read_raw_mask(path)

    def sample_mask(self, sample: Sample, height: int, width: int) -> np.ndarray:
        """The class-id mask of a sample (of an image ``height`` x ``width``): its mask file decoded.
        Datasets whose masks are drawn from annotations (src.data.annotations) draw them here."""
        return self.mask_to_ids(self.raw_mask(sample.mask), sample.mask)

    def coding(self) -> dict:
        """Everything besides the files that changes the decoded masks (part of the cache key)."""
        return {}

    # --- reading ------------------------------------------------------------------------
    def read_sample(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Image and class-id mask at their stored size, both checked."""
        image = read_image(sample.image, "L" if self.in_channels == 1 else "RGB")
        mask = self.sample_mask(sample, *image.shape[:2])
        if mask.shape[:2] != image.shape[:2]:
            raise DatasetError(
                f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image.name} is "
                f"{image.shape[1]}x{image.shape[0]}; masks must have their image's size"
            )
        bad = invalid_mask_values(mask, self.num_classes, self.ignore_index)
        if bad:
            raise DatasetError(
                f"{sample.mask}: class ids {bad} outside 0..{self.num_classes - 1} (and {self.ignore_index})"
            )
        return image, mask

    def original_masks(self, split: str) -> bool:
        return split == "test" and self.eval_resolution == "original"

    def read_resized(self, sample: Sample, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Image and mask by ``data.resize``; the test split's mask as stored under eval_resolution=original."""
        image, mask = self.read_sample(sample)
        if self.resize == "square" and not self.original_masks(split):
            return resize_pair(image, mask, self.image_size)
        image, resized_mask = resize_by_policy(image, None if self.original_masks(split) else mask, self.image_size, self.resize)
        return image, mask if self.original_masks(split) else resized_mask

    def _cache_key(self, split: str, samples: list[Sample]) -> str:
        digest = hashlib.sha1()
        header = {"dataset": self.name, "split": split, "size": self.image_size, "channels": self.in_channels,
                  "resize": self.resize, "original_masks": self.original_masks(split), **self.coding()}  # fmt: skip
        digest.update(json.dumps(header, sort_keys=True).encode())
        for sample in samples:
            for path in (sample.image, sample.mask):
                stat = path.stat()
                digest.update(f"{sample.name}|{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def _write_split(self, staging: Path, samples: list[Sample], split: str) -> None:
        size, channels = self.image_size, self.in_channels
        read = partial(self.read_resized, split=split)
        with ThreadPoolExecutor(self.decode_workers) as pool:  # PIL and OpenCV release the GIL
            if self.resize == "square" and not self.original_masks(split):  # one N x size x size array each
                images = np.lib.format.open_memmap(staging / "images.npy", "w+", np.uint8, (len(samples), size, size, channels))
                masks = np.lib.format.open_memmap(staging / "masks.npy", "w+", np.uint8, (len(samples), size, size))
                for index, (image, mask) in enumerate(pool.map(read, samples)):
                    images[index], masks[index] = image, mask
                images.flush()
                masks.flush()
                del images, masks
            else:  # items of their own sizes, one after another
                images, masks = RaggedWriter(staging, "images"), RaggedWriter(staging, "masks")
                for image, mask in pool.map(read, samples):
                    images.append(image)
                    masks.append(mask)
                images.close()
                masks.close()
        (staging / "names.json").write_text(json.dumps([s.name for s in samples]))

    def load_split(self, split: str) -> SplitArrays:
        samples = self.list_split(split)
        if not samples:
            raise DatasetError(f"{self.root}: the {split} split of {self.name} is empty; check data.root and the split files")
        folder = self.cache_dir / f"{self.name}-{split}-{self.image_size}-{self._cache_key(split, samples)}"
        self._split_folders[split] = folder
        arrays = cached_split(folder, lambda staging: self._write_split(staging, samples, split))
        if not any((mask != self.ignore_index).any() for mask in arrays.masks):
            raise DatasetError(
                f"{self.root}: every pixel of every {split} mask is {self.ignore_index} (data.ignore_index): nothing to "
                "learn or score. Are the masks coded another way (e.g. 0/255)? Map stored values with data.mask_values."
            )
        return arrays

    def unpaired_files(self) -> list[str]:
        """Images without masks and masks without images anywhere under root (for src.data.check)."""
        return []

    def build_dataset(self, split: str, aug) -> SegmentationItems:
        if self.cache:
            return super().build_dataset(split, aug)
        return DecodingDataset(self, self.list_split(split), split, aug, self.n_aug, self.seed)


class DecodingDataset(SegmentationItems):
    """The plain path (data.cache=false): decode and resize every item on every access."""

    def __init__(self, datamodule: FileSegmentationDataModule, samples: list[Sample], split: str, aug, n_aug: int, seed: int):
        super().__init__([s.name for s in samples], aug, n_aug, seed, datamodule.mean, datamodule.std, datamodule.crop(split))
        self.datamodule, self.samples, self.split = datamodule, samples, split

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.datamodule.read_resized(self.samples[index], self.split)
