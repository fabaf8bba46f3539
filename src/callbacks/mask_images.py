"""Logs image | ground truth | prediction grids of fixed validation samples every epoch."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
import cv2

from src.data.items import pad_collate
from src.data.palettes import colourise, voc_palette
from src.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalise
from src.callbacks.figures import publish_image
from src.utils.atomic import save_image

SEPARATOR = 2  # pixels of white between panels


def mask_grid(
    images: torch.Tensor,
    masks: torch.Tensor,
    predictions: torch.Tensor,
    palette: np.ndarray,
    ignore_index: int = 255,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
) -> np.ndarray:
    """One row per sample: image | ground truth | prediction, as an H x W x 3 uint8 picture."""
    rows = []
    for image, mask, prediction in zip(images, masks, predictions):
        if image.shape[0] == 1:  # grey input: shown as grey RGB
            pixels = denormalise(image, mean[:1], std[:1]).repeat(3, axis=2)
        else:
            pixels = denormalise(image[:3], mean, std)
        truth = mask.cpu().numpy()
        if truth.shape != pixels.shape[:2]:  # a test mask at its original size: drawn at the image's
            truth = cv2.resize(truth.astype(np.uint8), pixels.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        panels = [
            pixels,
            colourise(truth, palette, ignore_index),
            colourise(prediction.cpu().numpy(), palette, ignore_index),
        ]
        gap = np.full((pixels.shape[0], SEPARATOR, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1))
        rows.append(np.full((SEPARATOR, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def items_batch(dataset, indices, datamodule=None) -> dict:
    """Items ``indices`` of ``dataset``, collated and (through the datamodule) normalised as the
    task sees them; datasets and loaders may carry encoded items (src.data.items)."""
    batch = pad_collate([dataset[int(i)] for i in indices], getattr(datamodule, "ignore_index", 255))
    return datamodule.on_after_batch_transfer(batch, 0) if datamodule is not None else batch


def evenly_spaced_batch(dataset, count: int, datamodule=None) -> dict:
    """``count`` items spread evenly over ``dataset`` (see items_batch)."""
    return items_batch(dataset, np.linspace(0, len(dataset) - 1, min(count, len(dataset))), datamodule)


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """The module in eval mode without gradients (batch norm on its running statistics, dropout
    off), back in the mode it was in afterwards: a picture shows the predictions a test makes."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def prediction_grid(pl_module: LightningModule, samples: dict, datamodule=None) -> np.ndarray:
    """image | truth | prediction for a batch of samples, in the datamodule's palette, predicted in eval mode."""
    with evaluating(pl_module):
        predictions = pl_module.predict_masks(samples["image"].to(pl_module.device))
    return mask_grid(
        samples["image"],
        samples["mask"],
        predictions,
        palette=getattr(datamodule, "palette", voc_palette()),
        ignore_index=getattr(datamodule, "ignore_index", 255),
        mean=getattr(datamodule, "mean", IMAGENET_MEAN),
        std=getattr(datamodule, "std", IMAGENET_STD),
    )


class MaskImageLogger(Callback):
    """Writes the grid to TensorBoard (tag ``val/masks``) and to ``save_dir/val_masks.png``.

    The samples are the same every epoch (evenly spaced over the validation set), so the
    pictures show the model improving on the same images.
    """

    def __init__(self, num_samples: int = 8, save_dir: str | None = None):
        self.num_samples = num_samples
        self.save_dir = Path(save_dir) if save_dir else None
        self._samples: dict | None = None

    def _fixed_samples(self, trainer: Trainer) -> dict:
        if self._samples is None:
            batch = evenly_spaced_batch(trainer.val_dataloaders.dataset, self.num_samples, trainer.datamodule)
            self._samples = {"image": batch["image"], "mask": batch["mask"]}
        return self._samples

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.num_samples <= 0 or not pl_module.makes_masks:
            return  # (a classification task has no masks to draw)
        grid = prediction_grid(pl_module, self._fixed_samples(trainer), trainer.datamodule)
        publish_image(trainer, grid, "val/masks")
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            save_image(grid, self.save_dir / "val_masks.png")
