"""Stops training at the first non-finite training loss, before any checkpoint holds its weights."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback

from src.utils.hardware import logging_step


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and step."""


class StopOnNonFiniteLoss(Callback):
    """Records on the device the first step whose loss is NaN or infinite, and reads the record
    (a device sync) only every ``trainer.log_every_n_steps`` steps and before validation, i.e.
    before the epoch's checkpoints are written: the checkpoints on disk stay the last good ones."""

    def __init__(self):
        self._first_bad: torch.Tensor | None = None  # [global step, value] of the first bad loss

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach()
        if self._first_bad is None:
            self._first_bad = torch.tensor([-1.0, 0.0], device=loss.device)
        record = torch.stack([torch.tensor(float(trainer.global_step), device=loss.device), loss.float()])
        newly_bad = ~torch.isfinite(loss) & (self._first_bad[0] < 0)
        self._first_bad = torch.where(newly_bad, record, self._first_bad)
        if logging_step(trainer):
            self._check(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    def _check(self, trainer) -> None:
        if self._first_bad is None:
            return
        step, value = self._first_bad.tolist()
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became {value} at step {int(step)} (epoch {trainer.current_epoch + 1}); training "
                "stopped, and checkpoints/ keeps the last good epoch. Lower optimizer.lr, check the data, or rerun "
                "with trainer.detect_anomaly=true to find the operation that first gives NaN."
            )
