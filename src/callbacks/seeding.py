"""Per-epoch seeding, so that a resumed run draws the same random numbers as an uninterrupted one."""

from __future__ import annotations

import lightning as L
from lightning.pytorch import Callback

from src.utils.seeding import derived_seed


class EpochSeeding(Callback):
    """Seeds torch, numpy and random from (seed, epoch) at the start of every training epoch.

    The random draws inside an epoch (dropout, anything a model samples) then depend on the
    epoch, not on how many epochs this process has run, which is what makes resuming exact.
    (Data order and augmentation are seeded the same way by the datamodule.)
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        L.seed_everything(derived_seed(self.seed, trainer.current_epoch), workers=True, verbose=False)
