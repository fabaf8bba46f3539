"""Dataset items from uint8 arrays: augmented copies, the uint8 form loaders carry, normalisation.

Items follow the DESIGN contract (normalised float32 image, int64 mask, name). The loaders,
though, carry uint8 images and masks from the workers (a quarter of the bytes to pass between
processes and to the GPU, and no per-item float arithmetic); the datamodule's
``on_after_batch_transfer`` normalises each batch on its device, so the task sees the contract.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from src.data.splits import SplitArrays
from src.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Augmentation, normalise
from src.utils.seeding import derived_seed


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
        crop: Augmentation | None = None,
    ):
        """``crop``: applied to every item after the augmentation (the training crop of
        ``data.crop_size``), so that items of any size batch together."""
        self.names = names
        self.aug = aug
        self.crop = crop
        self.n_aug = n_aug if aug is not None else 0
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed
        self._aug_epoch: tuple[int, int] | None = None
        for random_part in (aug, crop):
            if random_part is not None:
                random_part.reseed(seed)

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
        if key != self._aug_epoch:
            if self.aug is not None:
                self.aug.reseed(derived_seed(self.seed, *key))
            if self.crop is not None:
                self.crop.reseed(derived_seed(self.seed, *key, 1))
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
        if self.crop is not None:
            image, target = self.crop(image, target, 0)
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


def pad_collate(items: list[dict], ignore_index: int = 255) -> dict:
    """A batch of items. Items of one size stack as they are; items of different sizes
    (data.resize=short_side|none, or test masks at their original size) are padded at the bottom
    and right to the largest (images with 0, masks with ignore_index, so padding counts in no loss
    or score), and ``image_size`` and ``mask_size`` (B x 2: height, width) give each item's own size."""
    if "mask" not in items[0]:
        return default_collate(items)
    images, masks = [item["image"] for item in items], [item["mask"] for item in items]
    sizes = {tuple(image.shape[-2:]) for image in images} | {tuple(mask.shape[-2:]) for mask in masks}
    if len(sizes) == 1:
        return default_collate(items)
    height = max(max(t.shape[-2] for t in images), max(t.shape[-2] for t in masks))
    width = max(max(t.shape[-1] for t in images), max(t.shape[-1] for t in masks))
    image_batch = images[0].new_zeros((len(items), images[0].shape[0], height, width))
    mask_batch = masks[0].new_full((len(items), height, width), ignore_index)
    for index, (image, mask) in enumerate(zip(images, masks)):
        image_batch[index, :, : image.shape[-2], : image.shape[-1]] = image
        mask_batch[index, : mask.shape[-2], : mask.shape[-1]] = mask
    return {
        "image": image_batch,
        "mask": mask_batch,
        "name": [item["name"] for item in items],
        "image_size": torch.tensor([list(image.shape[-2:]) for image in images]),
        "mask_size": torch.tensor([list(mask.shape[-2:]) for mask in masks]),
    }
