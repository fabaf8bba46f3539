"""Lightning's rich progress bar, on one 80-column line, reading the logged values less often."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from rich.progress import TimeRemainingColumn

from src.utils.hardware import logging_step


class ProgressBar(RichProgressBar):
    """Shows the step's training loss and the ``monitor``ed score only, the time left but not the
    time spent or the it/s (src.train records images/s in metrics.json), so a bar and its values
    fit one 80-column line.

    Advances every batch but reads the logged values (``.item()``: on a GPU, a wait for every
    queued kernel) only every ``trainer.log_every_n_steps`` training steps, on the epoch's last
    batch and outside training, so the shown loss costs the training loop no per-step sync."""

    def __init__(self, monitor: str = "val/loss", **kwargs: Any):
        super().__init__(**kwargs)
        self.monitor = monitor
        self._shown: dict[str, Any] | None = None

    def configure_columns(self, trainer) -> list:
        description, bar, batches, _elapsed_and_left, _speed = super().configure_columns(trainer)
        bar.bar_width = 14  # rich's 40 wraps the values onto a second line at 80 columns
        return [description, bar, batches, TimeRemainingColumn(compact=True)]

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

    def few(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The step's training loss and the monitored score, under their logged names."""
        return {key.removesuffix("_step"): value for key, value in metrics.items() if key in ("train/loss_step", self.monitor)}
