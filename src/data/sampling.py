"""The training order: shuffled by (seed, epoch) alone, so a resumed run reads what the
uninterrupted one did."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from src.utils.seeding import derived_seed


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
