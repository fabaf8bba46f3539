"""Image classification folders: one folder per class, or flat files named <class>_<index>.<ext>.

    root/horse/0001.png, root/horse/0002.jpg, root/zebra/...      (torchvision's ImageFolder layout)
    root/horse_0001.png, root/zebra_0001.png, ...                  (class name before the last "_")

Classes are the sorted folder (or prefix) names. The train, val and test splits are seeded
fractions of every class's images, so each class is in every split. Each split is decoded and
resized once into uint8 arrays in memory at setup; items are augmented from them.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from src.data.datamodule import ImageDataModule
from src.data.files import IMAGE_SUFFIXES, DatasetError, read_image, require_dir, resize_image
from src.data.items import AugmentedItems
from src.data.splits import seeded_split


def split_folders(root: Path) -> dict[str, Path] | None:
    """root/train/<class>/ and root/test/<class>/ (CIFAR-10's and ImageNet's image-folder trees):
    the fixed splits, or None for a single folder of classes."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return {"train": root / "train", "test": root / "test"}
    return None


def list_class_images(root: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image paths, from either layout (folders take precedence); for a
    root with train/ and test/ folders, train/'s."""
    require_dir(root, "image folder", "Set data.root to a folder with one sub-folder per class (or <class>_<n>.png files).")
    if split_folders(root):
        root = root / "train"
    by_class: dict[str, list[Path]] = defaultdict(list)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        by_class[folder.name] = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not by_class:
        for path in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label, separator, _ = path.stem.rpartition("_")
            if not separator or not label:
                raise DatasetError(f"{path}: flat image folders need files named <class>_<index>{path.suffix}")
            by_class[label].append(path)
    empty = [name for name, paths in by_class.items() if not paths]
    if empty or not by_class:
        raise DatasetError(f"{root}: no images for classes {empty or 'any'} (looked for {sorted(IMAGE_SUFFIXES)})")
    return dict(sorted(by_class.items()))


class LabelledImages(AugmentedItems):
    """Items ``{"image", "label", "name"}`` from uint8 images N x H x W x C and int labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, names: list[str], *args, **kwargs):
        super().__init__(names, *args, **kwargs)
        self.images, self.labels = images, labels

    def load(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], int(self.labels[index])

    def encode_target(self, label: int) -> dict[str, torch.Tensor]:
        return {"label": torch.tensor(label, dtype=torch.int64)}


class ImageFolderDataModule(ImageDataModule):
    """Classification data; shares loaders, augmentation and normalisation with the segmentation
    datamodules (``ignore_index`` is the losses' only)."""

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        decode_workers: int = 4,
        class_names: list[str] | None = None,
        num_classes: int | None = None,
        **kwargs,
    ):
        self.root = Path(root).expanduser()
        self.by_class = list_class_images(self.root)
        found = list(self.by_class)
        if class_names is not None and list(class_names) != found:
            raise ValueError(f"data.class_names={list(class_names)} but {self.root} holds classes {found}; set data.class_names=null")
        if num_classes is not None and num_classes != len(found):
            raise ValueError(
                f"data.num_classes={num_classes} but {self.root} holds {len(found)} classes {found[:10]}"
                f"{' ...' if len(found) > 10 else ''}; set data.num_classes={len(found)}"
            )
        super().__init__(num_classes=len(found), class_names=found, **kwargs)
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must leave images to train on")
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.decode_workers = decode_workers

    def split_files(self, split: str) -> list[tuple[Path, int]]:
        """(path, label) of one split: seeded per-class fractions, so splits never overlap; with
        train/ and test/ folders, test is test/ and val a seeded fraction of train/."""
        files = []
        fixed = split_folders(self.root)
        if fixed:
            test_classes = list_class_images(fixed["test"])
            if list(test_classes) != list(self.by_class):
                raise DatasetError(f"{fixed['test']} holds classes {list(test_classes)}, {fixed['train']} {list(self.by_class)}; they must match")
            for label, paths in enumerate(self.by_class.values()):
                train, val = seeded_split([str(p) for p in paths], self.val_fraction, self.seed)
                chosen = {"train": train, "val": val, "test": [str(p) for p in test_classes[list(self.by_class)[label]]]}[split]
                files += [(Path(name), label) for name in chosen]
            return files
        for label, paths in enumerate(self.by_class.values()):
            names = [str(p) for p in paths]
            rest, test = seeded_split(names, self.test_fraction, self.seed)
            train, val = seeded_split(rest, self.val_fraction / (1 - self.test_fraction), self.seed)
            files += [(Path(name), label) for name in {"train": train, "val": val, "test": test}[split]]
        return files

    def _read(self, path: Path) -> np.ndarray:
        return resize_image(read_image(path, "L" if self.in_channels == 1 else "RGB"), self.image_size)

    def build_dataset(self, split: str, aug) -> LabelledImages:
        files = self.split_files(split)
        if not files:
            raise DatasetError(f"{self.root}: the {split} split is empty; add images or change data.{split}_fraction")
        with ThreadPoolExecutor(self.decode_workers) as pool:  # PIL and OpenCV release the GIL
            images = np.stack(list(pool.map(self._read, [path for path, _ in files])))
        labels = np.array([label for _, label in files], dtype=np.int64)
        names = [str(path.relative_to(self.root)) for path, _ in files]
        return LabelledImages(images, labels, names, aug, self.n_aug, seed=self.seed, mean=self.mean, std=self.std)
