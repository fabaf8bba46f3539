"""Lightning's rich progress bar, reading the logged values less often."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar

from src.utils.hardware import logging_step


class ProgressBar(RichProgressBar):
    """Advances every batch but reads the logged values (``.item()``: on a GPU, a wait for every
    queued kernel) only every ``trainer.log_every_n_steps`` training steps, on the epoch's last
    batch and outside training, so the shown loss costs the training loop no per-step sync."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._shown: dict[str, Any] | None = None

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        stale = (
            self._shown is None
            or not trainer.training
            or trainer.is_last_batch
            or logging_step(trainer)
        )
        if stale:
            self._shown = self.few(super().get_metrics(trainer, pl_module))
        return self._shown

    @staticmethod
    def few(metrics: dict[str, Any]) -> dict[str, Any]:
        """The values worth a glance, so they fit an 80-column terminal (rich still stacks them in
        its metrics column, one under another): the step's training loss and the validation scores; not the epoch's mean loss, the validation loss,
        the training scores or the logger's version number."""
        return {
            key.removesuffix("_step"): value
            for key, value in metrics.items()
            if key == "train/loss_step" or (key.startswith("val/") and key != "val/loss")
        }
