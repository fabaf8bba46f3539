"""Datasets read from image and mask files: listing, reading with clear errors, and the cache.

Decoding a JPEG and resizing it every epoch wastes the CPU, so each split is decoded and
resized once into uint8 arrays (``<cache_dir>/<dataset>-<split>-<size>-<key>/``, memory-mapped
when read) and every epoch augments from them. The key hashes the dataset, split, size, mask
coding and every file's path, size and modification time, so a changed file rebuilds the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from src.data.base import SegmentationDataModule, SegmentationItems, SplitArrays, invalid_mask_values

# Refuse decompression bombs with a clear error instead of exhausting memory.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


class DatasetError(ValueError):
    """A problem with one file of a dataset; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Any image file as H x W x C uint8 (grey, palette and alpha images converted to ``mode``)."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert(mode)).reshape(image.height, image.width, -1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable image ({error}); re-export or remove the file") from None


def read_raw_mask(path: Path) -> np.ndarray:
    """A mask file as stored: H x W for grey/palette PNGs (palette indices, not colours), H x W x 3 for RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("L", "P", "I", "I;16"):
                return np.asarray(image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable mask ({error}); re-export or remove the file") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Squash an H x W x C uint8 image to size x size x C (area interpolation)."""
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return resized[..., None] if resized.ndim == 2 else resized  # OpenCV drops a single channel axis


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Squash to size x size: area interpolation for the image, nearest for the class ids."""
    return resize_image(image, size), cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def seeded_split(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split sorted names into (rest, held-out fraction) the same way for the same seed."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    held = int(round(fraction * len(names)))
    held_out = {names[i] for i in order[:held]}
    return [n for n in names if n not in held_out], [n for n in names if n in held_out]


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a staging folder that becomes ``folder`` only if the block completes, so a half-built
    cache (a crash, a full disk, Ctrl-C) is never read."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        yield staging
        if folder.exists():  # another process built the same cache meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_cached(folder: Path) -> SplitArrays | None:
    """A split cached by atomic_folder (memory-mapped), or None if there is none."""
    if not (folder / "names.json").is_file():
        return None
    return SplitArrays(
        np.load(folder / "images.npy", mmap_mode="r"),
        np.load(folder / "masks.npy", mmap_mode="r"),
        json.loads((folder / "names.json").read_text()),
    )


def require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path} does not exist or is not a folder. {hint}")
    return path


class FileSegmentationDataModule(SegmentationDataModule):
    """Base for datasets on disk. Subclasses list each split's samples and decode one mask into
    class ids; this class reads, checks, resizes, caches and serves them."""

    name = "files"

    def __init__(
        self, root: str, cache: bool = True, cache_dir: str | None = None, decode_workers: int = 4, **kwargs
    ):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / ".seglab_cache"
        self.decode_workers = decode_workers

    # --- what a dataset says -------------------------------------------------------------
    def list_split(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Class ids (uint8, ignore_index for ignored pixels) from a mask as stored."""
        raise NotImplementedError

    def coding(self) -> dict:
        """Everything besides the files that changes the decoded masks (part of the cache key)."""
        return {}

    # --- reading ------------------------------------------------------------------------
    def read_sample(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Image and class-id mask at their stored size, both checked."""
        image = read_image(sample.image, "L" if self.in_channels == 1 else "RGB")
        mask = self.mask_to_ids(read_raw_mask(sample.mask), sample.mask)
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

    def read_resized(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.read_sample(sample)
        return resize_pair(image, mask, self.image_size)

    def _cache_key(self, split: str, samples: list[Sample]) -> str:
        digest = hashlib.sha1()
        header = {"dataset": self.name, "split": split, "size": self.image_size, "channels": self.in_channels, **self.coding()}
        digest.update(json.dumps(header, sort_keys=True).encode())
        for sample in samples:
            for path in (sample.image, sample.mask):
                stat = path.stat()
                digest.update(f"{sample.name}|{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def _build_cache(self, folder: Path, samples: list[Sample]) -> None:
        size, channels = self.image_size, self.in_channels
        with atomic_folder(folder) as staging:
            images = np.lib.format.open_memmap(staging / "images.npy", "w+", np.uint8, (len(samples), size, size, channels))
            masks = np.lib.format.open_memmap(staging / "masks.npy", "w+", np.uint8, (len(samples), size, size))
            with ThreadPoolExecutor(self.decode_workers) as pool:  # PIL and OpenCV release the GIL
                for index, (image, mask) in enumerate(pool.map(self.read_resized, samples)):
                    images[index], masks[index] = image, mask
            images.flush()
            masks.flush()
            del images, masks
            (staging / "names.json").write_text(json.dumps([s.name for s in samples]))

    def load_split(self, split: str) -> SplitArrays:
        samples = self.list_split(split)
        if not samples:
            raise DatasetError(f"{self.root}: the {split} split of {self.name} is empty; check data.root and the split files")
        folder = self.cache_dir / f"{self.name}-{split}-{self.image_size}-{self._cache_key(split, samples)}"
        cached = load_cached(folder)
        if cached is None:
            self._build_cache(folder, samples)
            cached = load_cached(folder)
        return cached

    def unpaired_files(self) -> list[str]:
        """Images without masks and masks without images anywhere under root (for src.data.check)."""
        return []

    def build_dataset(self, split: str, aug) -> SegmentationItems:
        if self.cache:
            return super().build_dataset(split, aug)
        return DecodingDataset(self, self.list_split(split), aug, self.n_aug, self.seed)


class DecodingDataset(SegmentationItems):
    """The plain path (data.cache=false): decode and resize every item on every access."""

    def __init__(self, datamodule: FileSegmentationDataModule, samples: list[Sample], aug, n_aug: int, seed: int):
        super().__init__([s.name for s in samples], aug, n_aug, seed, datamodule.mean, datamodule.std)
        self.datamodule = datamodule
        self.samples = samples

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.datamodule.read_resized(self.samples[index])
