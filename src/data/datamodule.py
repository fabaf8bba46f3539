"""The datamodules' common base, and the base of those whose items are segmentation masks.

A subclass says how to build each split's dataset; a segmentation datamodule only how to get
each split as uint8 arrays already at training size (``load_split``): decoding and resizing
happen once there, and every epoch reads the arrays and augments them.

Training randomness is a function of (seed, epoch): the order of the training set and each
worker's augmentation seed are derived from them, so a run resumed at epoch e sees the same
data in the same order, augmented the same way, as the uninterrupted run did.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from src.data.class_weights import cached_counts, class_pixel_counts
from src.data.items import ArraySegmentationDataset, AugmentedItems, EncodedItems, SegmentationItems, normalise_item, pad_collate
from src.data.masks import check_mask_values
from src.data.palettes import voc_palette
from src.data.sampling import EpochShuffle
from src.data.splits import SPLITS, SplitArrays
from src.data.transforms import Augmentation, normalisation_stats, random_crop
from src.utils.hardware import check_num_workers, loader_workers


class ImageDataModule(LightningDataModule):
    """What every datamodule shares, whatever its target (masks, colour classes, labels): the
    arguments and their checks, class names, the datasets of each split (``build_dataset``),
    seeded loaders, augmentation and normalisation on the batch's device."""

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        in_channels: int = 3,
        ignore_index: int = 255,
        image_size: int = 256,
        batch_size: int = 16,
        num_workers: int | str = 0,
        persistent_workers: bool = True,
        aug: Augmentation | None = None,
        n_aug: int = 0,
        seed: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"data.num_classes must count every class, background included (>= 2), got {num_classes}")
        if class_names is None:
            class_names = [f"class_{k}" for k in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"data.class_names has {len(class_names)} names for data.num_classes={num_classes}")
        repeated = sorted({str(name) for name in class_names if list(map(str, class_names)).count(str(name)) > 1})
        if repeated:  # two classes of one name would log one test/iou_<name> and hide the other
            raise ValueError(f"class names must differ: {', '.join(map(repr, repeated))} named more than once in {list(class_names)}")
        if n_aug < 0:
            raise ValueError(f"data.n_aug must be >= 0, got {n_aug}")
        if aug is not None and aug.max_copies is not None and n_aug > aug.max_copies:
            raise ValueError(
                f"data.n_aug={n_aug} but aug={type(aug).__name__} makes at most {aug.max_copies} distinct copies"
            )
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        self.image_size = image_size
        self.batch_size = batch_size
        check_num_workers(num_workers)
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers
        self.aug = aug
        self.n_aug = n_aug
        self.seed = seed
        self.mean, self.std = normalisation_stats(in_channels, mean, std)
        self.datasets: dict[str, AugmentedItems] = {}

    def build_dataset(self, split: str, aug: Augmentation | None) -> AugmentedItems:
        """The dataset of one split ("train", "val" or "test"), augmented with ``aug``."""
        raise NotImplementedError

    def _dataset(self, split: str) -> AugmentedItems:
        if split not in self.datasets:
            self.datasets[split] = self.build_dataset(split, self.aug if split == "train" else None)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, SPLITS)
        for split in splits:
            self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self._dataset(split)
        sampler = None
        if shuffle:
            # The epoch Lightning will hand to set_epoch (restored when a run resumes). A loader
            # with workers draws its first indices before that call, so the sampler starts there.
            epoch = self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0
            sampler = EpochShuffle(len(dataset), self.seed, epoch)
        trainer = self.trainer
        on_gpu = isinstance(trainer.accelerator, CUDAAccelerator) if trainer is not None else torch.cuda.is_available()
        workers = loader_workers(self.num_workers, trainer.num_devices if trainer is not None else 1, on_gpu)
        return DataLoader(
            EncodedItems(dataset),
            collate_fn=partial(pad_collate, ignore_index=self.ignore_index),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=self.persistent_workers and workers > 0,
            # Page-locked batches copy to a GPU asynchronously; on a CPU run pinning only costs.
            pin_memory=on_gpu,
        )

    def normalise_batch(self, batch: dict) -> dict:
        """A loader's uint8 batch as the contract's float32 normalised images and int64 masks."""
        return normalise_item(batch, self.mean, self.std)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return self.normalise_batch(batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SegmentationDataModule(ImageDataModule):
    """Datamodules whose items are an image and a mask of class ids: a subclass gives each split
    as arrays (``load_split``); masks are checked and the palette colours the classes."""

    def __init__(self, *args, crop_size: int | None = None, **kwargs):
        """``crop_size``: train on random crop_size x crop_size crops (padded with ignore_index
        where an image is smaller); null: whole items."""
        super().__init__(*args, **kwargs)
        if crop_size is not None and (isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 1):
            raise ValueError(f"data.crop_size must be null or a whole number >= 1, got {crop_size!r}")
        self.crop_size = crop_size
        self._palette = voc_palette(max(self.num_classes, 2))

    @property
    def palette(self) -> np.ndarray:
        """One RGB colour per class (uint8 K x 3), for mask pictures and overlays."""
        return self._palette

    def load_split(self, split: str) -> SplitArrays:
        """Return one split ("train", "val" or "test") as arrays at training size."""
        raise NotImplementedError

    def split_folder(self, split: str):
        """Where a split is cached on disk (statistics are kept beside it), or None."""
        return None

    def class_pixel_counts(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(pixels of each class, pixels of the images each class occurs in) in ``split``'s masks."""
        arrays = self.load_split(split)
        return cached_counts(self.split_folder(split), lambda: class_pixel_counts(arrays.masks, self.num_classes))

    def build_dataset(self, split: str, aug: Augmentation | None) -> SegmentationItems:
        """The dataset of one split, from load_split's arrays, masks checked."""
        arrays = self.load_split(split)
        check_mask_values(arrays, self.num_classes, self.ignore_index, f"{type(self).__name__} {split} split")
        return ArraySegmentationDataset(arrays, aug, self.n_aug, seed=self.seed, mean=self.mean, std=self.std, crop=self.crop(split))

    def crop(self, split: str) -> Augmentation | None:
        """The training crop (data.crop_size) for the train split; None otherwise."""
        return random_crop(self.crop_size, self.ignore_index) if split == "train" and self.crop_size else None
