"""Augmentation variants (conf/aug/) and the normalisation every item goes through.

An augmentation is called as ``aug(image, mask, copy)`` on uint8 H x W x C / H x W arrays
(mask None for classification: the image alone is transformed).
``copy`` is 0 when the training set is augmented on the fly (data.n_aug=0), or 1..n_aug for
the n-th augmented copy of the data (copy 0 of an n_aug > 0 dataset is the original and
never reaches the augmentation).
"""

from __future__ import annotations

import random
from typing import Sequence

import albumentations as A
import numpy as np
import torch

# ImageNet statistics, so that ImageNet-pretrained encoders see what they were trained on.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)  # ImageNet's mean/std averaged over RGB


def normalisation_stats(in_channels: int, mean=None, std=None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) images of ``in_channels`` channels are normalised with: ``mean``/``std`` (data.mean,
    data.std, set by the user or from the encoder's pretrained convention) where given."""
    if mean is not None and std is not None:
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"data.mean and data.std need {in_channels} values (data.in_channels), got {list(mean)} and {list(std)}")
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return (GREY_MEAN, GREY_STD) if in_channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)


def apply(transform: A.BasicTransform, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An albumentations transform on an image and its mask together, or on the image alone."""
    if mask is None:
        return transform(image=image)["image"], None
    out = transform(image=image, mask=mask)
    return out["image"], out["mask"]


class Augmentation:
    """Base class; ``max_copies`` bounds data.n_aug (None: any number)."""

    max_copies: int | None = None

    def __call__(self, image: np.ndarray, mask: np.ndarray, copy: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Give the random state a new seed (each DataLoader worker calls this once)."""


class NoAugmentation(Augmentation):
    max_copies = 0

    def __call__(self, image, mask, copy):
        return image, mask


class RandomAugmentation(Augmentation):
    """Applies an albumentations pipeline with fresh random parameters on every call."""

    def __init__(self, transform: A.BasicTransform):
        self.transform = transform

    def __call__(self, image, mask, copy):
        return apply(self.transform, image, mask)

    def reseed(self, seed):
        self.transform.set_random_seed(seed)


class CopyAugmentation(Augmentation):
    """Copy k of the data gets the k-th transform; on the fly, each item a random one or none."""

    def __init__(self, transforms: Sequence[A.BasicTransform], seed: int = 0):
        self.transforms = list(transforms)
        self.max_copies = len(self.transforms)
        self.rng = random.Random(seed)

    def __call__(self, image, mask, copy):
        if copy == 0:
            choice = self.rng.randrange(len(self.transforms) + 1)
            if choice == len(self.transforms):
                return image, mask
            transform = self.transforms[choice]
        else:
            transform = self.transforms[copy - 1]
        return apply(transform, image, mask)

    def reseed(self, seed):
        self.rng.seed(seed)
        for transform in self.transforms:
            transform.set_random_seed(seed)


def random_crop(size: int, ignore_index: int = 255) -> RandomAugmentation:
    """A random size x size crop, padding an image smaller than that (image black, mask
    ignore_index: padded pixels count in no loss): the training crop of ``data.crop_size``."""
    return RandomAugmentation(A.Compose([
        A.RandomCrop(size, size, pad_if_needed=True, pad_position="random", border_mode=0, fill=0, fill_mask=ignore_index),
    ]))  # fmt: skip


def normalise(
    image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 [B x] C x H x W -> float32 (x / 255 - mean) / std, on the image's device."""
    std_t = torch.tensor(std, dtype=torch.float32, device=image.device)[:, None, None]
    mean_t = torch.tensor(mean, dtype=torch.float32, device=image.device)[:, None, None]
    return image.float().mul_(1.0 / (255.0 * std_t)).sub_(mean_t / std_t)


def denormalise(
    image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Inverse of normalise: C x H x W float -> H x W x C uint8 (for pictures)."""
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device)[:, None, None]
    pixels = (image * std_t + mean_t).clamp(0, 1).mul(255).round().byte()
    return pixels.permute(1, 2, 0).cpu().numpy()
