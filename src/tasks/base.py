"""What every task shares: a net, a loss, optimizer and scheduler factories, and freezing."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from lightning.pytorch import LightningModule
from torch import nn

STAGES = ("train", "val", "test")


def freeze_submodules(task: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """Turn off gradients of the named submodules of ``task`` (``net.encoder``: the names of its
    state dict); return them."""
    available = dict(task.named_modules())
    modules = []
    for name in names:
        if name not in available:
            parts = [f"net.{child}" for child, _ in task.net.named_children()]
            raise ValueError(f"task.freeze: {type(task.net).__name__} has no submodule {name!r}; its parts are {parts}")
        available[name].requires_grad_(False)
        modules.append(available[name])
    return modules


class Task(LightningModule):
    """A net trained with a loss over ``num_classes`` classes; ``freeze`` names submodules to keep
    fixed when fine-tuning (e.g. ``[net.encoder]``): no gradients, and batch norm keeps its loaded
    statistics. Without ``class_names`` the task takes the datamodule's (for data that finds its
    classes on disk), else ``"0"``, ``"1"``, ...

    What callbacks and entry points read from a task is declared here: ``makes_masks`` and
    ``predict_masks`` (mask pictures, src.predict), ``test_confusion`` (the confusion report),
    ``test_embeddings`` (the embedding plot), ``test_per_image`` (per-image scores, worst cases)
    and ``test_scores``.
    """

    makes_masks: bool = False  # predict_masks gives class-id masks (segmentation, colourisation)

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        freeze: Sequence[str] = (),
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self._names_given = class_names is not None
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
        # NHWC activations: oneDNN (CPU) and cuDNN (tensor cores) run convolutions faster in it.
        self.channels_last = channels_last
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.frozen = freeze_submodules(self, freeze)
        self.test_scores: dict[str, float] = {}  # after trainer.test: the scores, as plain floats
        self.test_confusion: torch.Tensor | None = None  # K x K, rows true: the confusion report's input
        self.test_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None  # features N x D, labels N
        self.test_per_image: list[dict] = []  # segmentation: name, dice, iou, acc, iou_per_class of each test image

    def train(self, mode: bool = True) -> "Task":
        super().train(mode)
        for module in self.frozen:
            module.eval()  # batch norm in frozen parts keeps its loaded statistics, whoever calls train()
        return self

    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        """Class ids B x H x W for a batch of normalised images (tasks with ``makes_masks``)."""
        raise NotImplementedError(f"{type(self).__name__} makes no masks")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        """Loss of one batch of ``stage`` ("train", "val", "test"), metrics updated."""
        raise NotImplementedError

    def _log_scores(self, stage: str) -> dict[str, torch.Tensor]:
        """Log the epoch's scores of ``stage`` and reset its metrics."""
        raise NotImplementedError

    def _test_confusion(self) -> torch.Tensor | None:
        """The test split's confusion matrix for the confusion report, or None for no report."""
        return None

    def _log_loss(self, loss: torch.Tensor, stage: str, batch_size: int) -> None:
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=batch_size)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_scores("train")

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self._test_confusion()
        self.test_scores = {name: float(value) for name, value in self._log_scores("test").items()}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not self._names_given and datamodule is not None and hasattr(datamodule, "class_names"):
            self.class_names = list(datamodule.class_names)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        interval = getattr(self.scheduler_factory, "interval", "epoch")
        if interval == "step":  # schedules over the run's steps (src/tasks/schedules.py)
            scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        else:
            scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": self.scheduler_monitor},
        }
