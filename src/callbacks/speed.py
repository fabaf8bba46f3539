"""Training speed: images per second over the training epochs only (validation excluded)."""

from __future__ import annotations

import time

from lightning.pytorch import Callback


class TrainingSpeed(Callback):
    """Counts the images of every training batch and the seconds of the training epochs;
    src.train writes ``images_per_s`` into metrics.json."""

    def __init__(self) -> None:
        self.images, self.seconds, self._started = 0, 0.0, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch["image"]) if isinstance(batch, dict) and "image" in batch else 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Lightning runs validation inside the training epoch, before this hook: it is left out
        # by ending the clock at validation's start (on_validation_start) where one ran.
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._started is not None and not trainer.sanity_checking:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    @property
    def images_per_s(self) -> float | None:
        return round(self.images / self.seconds, 2) if self.seconds > 0 else None
