"""What every segmentation datamodule shares: array-backed items, augmented copies, loaders.

A datamodule subclass only says how to get each split as uint8 arrays already at training
size (``load_split``); decoding and resizing happen once there, and every epoch reads the
arrays and augments them.

Dataset items follow the DESIGN contract (normalised float32 image, int64 mask). The loaders,
though, carry uint8 images and masks from the workers (a quarter of the bytes to pass between
processes and to the GPU, and no per-item float arithmetic); the datamodule's
``on_after_batch_transfer`` normalises each batch on its device, so the task sees the contract.
Code that iterates a loader outside Lightning calls ``datamodule.normalise_batch``.

Training randomness is a function of (seed, epoch): the order of the training set and each
worker's augmentation seed are derived from them, so a run resumed at epoch e sees the same
data in the same order, augmented the same way, as the uninterrupted run did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from src.data.palettes import voc_palette
from src.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Augmentation, normalisation_stats, normalise
from src.utils.hardware import check_num_workers, loader_workers
from src.utils.seeding import derived_seed

SPLITS = ("train", "val", "test")


class EpochShuffle(Sampler):
    """Shuffles the training set in an order that depends only on (seed, epoch), and hands the
    epoch to the dataset with each index, as (epoch, index), so that augmentation can be seeded
    by it in whichever process reads the item.

    Lightning calls ``set_epoch`` before each epoch; a sampler it does not reach (wrapped for
    distributed training) moves to the next epoch on its own.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0):
        self.size, self.seed, self.epoch = size, seed, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(derived_seed(self.seed, epoch)))
        return iter([(epoch, int(index)) for index in order])


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


def invalid_mask_values(mask: np.ndarray, num_classes: int, ignore_index: int) -> list[int]:
    """Values in a uint8 mask that are neither a class id nor ignore_index."""
    valid = np.zeros(256, dtype=bool)
    valid[:num_classes] = True
    valid[ignore_index] = True
    values = np.unique(mask)
    return values[~valid[values]].tolist()


def check_mask_values(split: SplitArrays, num_classes: int, ignore_index: int, where: str) -> None:
    """Fail, naming the item, when a mask holds a value that is neither a class id nor ignore_index."""
    for mask, name in zip(split.masks, split.names):
        bad = invalid_mask_values(mask, num_classes, ignore_index)
        if bad:
            raise ValueError(
                f"{where}: mask of {name!r} holds values {bad}, but data.num_classes={num_classes} "
                f"allows 0..{num_classes - 1} and {ignore_index} (ignore). Check the dataset's mask coding."
            )


class AugmentedItems(Dataset):
    """Items built from a uint8 image and a target (a mask, or a class label), optionally with
    augmented copies; subclasses say how to ``load`` one base item and how to ``encode_target``.

    With an augmentation and n_aug > 0 the dataset is the original followed by n_aug
    augmented copies ((1 + n_aug) x N items); with n_aug = 0 every item is augmented on the fly.
    """

    def __init__(
        self,
        names: list[str],
        aug: Augmentation | None = None,
        n_aug: int = 0,
        seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.names = names
        self.aug = aug
        self.n_aug = n_aug if aug is not None else 0
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed
        self._aug_epoch: tuple[int, int] | None = None
        if aug is not None:
            aug.reseed(seed)

    def __len__(self) -> int:
        return len(self.names) * (1 + self.n_aug)

    def load(self, index: int) -> tuple[np.ndarray, Any]:
        """uint8 image H x W x C and its target (a uint8 mask H x W, or an int label)."""
        raise NotImplementedError

    def encode_target(self, target: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Seed the augmentation for ``epoch`` in this process. Each loader worker holds its own
        copy of the random state and reads a fixed share of the batches, so a seed per
        (epoch, worker) makes the epoch's augmentations the same on every run of the seed."""
        worker = get_worker_info()
        key = (epoch, worker.id + 1 if worker is not None else 0)
        if self.aug is not None and key != self._aug_epoch:
            self.aug.reseed(derived_seed(self.seed, *key))
            self._aug_epoch = key

    def encoded_item(self, index: int) -> dict:
        """Item ``index`` before normalisation: uint8 image C x H x W and the encoded target."""
        n = len(self.names)
        base, copy = index % n, index // n
        image, target = self.load(base)
        if self.aug is not None and (copy > 0 or self.n_aug == 0):
            if isinstance(target, np.ndarray):  # a mask moves with its image
                image, target = self.aug(image, target, copy)
            else:  # a label does not
                image, _ = self.aug(image, None, copy)
        return {
            # np.array copies (once, into C order), so a read-only memory-mapped array is never aliased.
            "image": torch.from_numpy(np.array(image.transpose(2, 0, 1), order="C")),
            **self.encode_target(target),
            "name": self.names[base],
        }

    def __getitem__(self, index: int) -> dict:
        return normalise_item(self.encoded_item(index), self.mean, self.std)


class SegmentationItems(AugmentedItems):
    """Items of the DESIGN contract: image, mask of class ids, name."""

    def encode_target(self, mask: np.ndarray) -> dict[str, torch.Tensor]:
        # A copy: the mask may be a read-only view of the memory-mapped cache.
        return {"mask": torch.from_numpy(np.array(mask, dtype=np.uint8))}


def normalise_item(batch: dict, mean: Sequence[float], std: Sequence[float]) -> dict:
    """An encoded item or batch (uint8 image, uint8 mask) as float32 normalised image, int64 mask."""
    if batch["image"].dtype != torch.uint8:
        return batch
    batch = {**batch, "image": normalise(batch["image"], mean, std)}
    if "mask" in batch:
        batch["mask"] = batch["mask"].long()
    return batch


class EncodedItems(Dataset):
    """A view of a dataset that yields its uint8 items (what the loaders pass between processes)."""

    def __init__(self, items: AugmentedItems):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if isinstance(key, tuple):  # (epoch, index) from EpochShuffle
            epoch, key = key
            self.items.start_epoch(epoch)
        return self.items.encoded_item(key)


class ArraySegmentationDataset(SegmentationItems):
    """Items from a split already decoded into arrays (in memory or memory-mapped)."""

    def __init__(self, split: SplitArrays, *args, **kwargs):
        super().__init__(split.names, *args, **kwargs)
        self.split = split

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.split.images[index], self.split.masks[index]


class SegmentationDataModule(LightningDataModule):
    """Shared datamodule: validation of arguments and masks, datasets, loaders, palette."""

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
    ):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"data.num_classes must count every class, background included (>= 2), got {num_classes}")
        if class_names is None:
            class_names = [f"{type(self).__name__.removesuffix('DataModule').lower()}_{k}" for k in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"data.class_names has {len(class_names)} names for data.num_classes={num_classes}")
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
        self.mean, self.std = normalisation_stats(in_channels)
        self._palette = voc_palette(max(num_classes, 2))
        self.datasets: dict[str, AugmentedItems] = {}

    @property
    def palette(self) -> np.ndarray:
        """One RGB colour per class (uint8 K x 3), for mask pictures and overlays."""
        return self._palette

    def load_split(self, split: str) -> SplitArrays:
        """Return one split ("train", "val" or "test") as arrays at training size."""
        raise NotImplementedError

    def build_dataset(self, split: str, aug: Augmentation | None) -> SegmentationItems:
        """The dataset of one split, from load_split's arrays, masks checked."""
        arrays = self.load_split(split)
        check_mask_values(arrays, self.num_classes, self.ignore_index, f"{type(self).__name__} {split} split")
        return ArraySegmentationDataset(arrays, aug, self.n_aug, seed=self.seed, mean=self.mean, std=self.std)

    def _dataset(self, split: str) -> SegmentationItems:
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
