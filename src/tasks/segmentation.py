"""The segmentation LightningModule: a net, a loss, metrics and optimizer factories."""

from __future__ import annotations

import torch
from torch import nn

from src.metrics import PerImageDice, check_head, confusion_matrix, hard_predictions, per_image_scores, segmentation_scores
from src.tasks.base import STAGES, Task
from src.tasks.inference import Inference, logits_at_mask_size


class SegmentationTask(Task):
    """Trains any net mapping B x C x H x W to logits B x K x H x W.

    K = 1 is a sigmoid head for binary data (``num_classes`` = 2), K = ``num_classes`` a
    softmax head. Metrics come from one confusion matrix per stage, logged once per epoch as
    ``<stage>/<name>`` (train/loss, val/loss, val/dice, val/miou, val/iou_<class>, ...), and
    ``val/dice_per_image`` and ``test/dice_per_image`` (Dice per image, averaged over images).
    """

    makes_masks = True

    def __init__(
        self, *args, ignore_index: int = 255, threshold: float = 0.5, inference: Inference | dict | None = None, **kwargs
    ):
        """``ignore_index``: mask value that counts in no loss or metric; ``threshold``: probability
        above which a 1-channel head predicts foreground; ``inference``: how validation, test and
        prediction get logits (src/tasks/inference.py: whole or sliding window, TTA); the rest as for Task."""
        super().__init__(*args, **kwargs)
        self.inference = inference if isinstance(inference, Inference) else Inference(**(inference or {}))
        num_classes = self.num_classes
        if not 0 < threshold < 1:
            raise ValueError(f"task.threshold must be in (0, 1), got {threshold}")
        self.ignore_index = ignore_index
        self.threshold = threshold
        # "train" is taken by nn.Module.train, hence the suffix.
        self.confusion = nn.ModuleDict(
            {f"{stage}_cm": confusion_matrix(num_classes, ignore_index) for stage in STAGES}
        )
        # Per-image Dice for evaluation only: it keeps a number per image and costs a one-hot per batch.
        self.dice_per_image = nn.ModuleDict({f"{stage}_dice": PerImageDice(num_classes, ignore_index) for stage in ("val", "test")})

    @torch.no_grad()
    def predict_masks(self, images: torch.Tensor) -> torch.Tensor:
        """Class ids B x H x W for a batch of normalised images."""
        return hard_predictions(self.infer(images), self.threshold)

    def on_test_epoch_start(self) -> None:
        self.test_per_image = []

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the images' size by ``task.inference`` (whole or sliding window, with TTA)."""
        return self.inference(self, images)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        images, masks = batch["image"], batch["mask"]
        logits = self(images) if stage == "train" else self.infer(images)
        check_head(logits.shape[1], self.num_classes)
        if "image_size" in batch and not torch.equal(batch["image_size"], batch["mask_size"]):
            logits = logits_at_mask_size(logits, batch["image_size"], batch["mask_size"], masks.shape[-2:])
        loss = self.loss(logits, masks)
        predictions = hard_predictions(logits.detach(), self.threshold)
        self._update_metrics(predictions, masks, stage)
        if stage == "test":
            for name, row in zip(batch["name"], per_image_scores(predictions, masks, self.num_classes, self.ignore_index)):
                self.test_per_image.append({"name": name, **row})
        self._log_loss(loss, stage, images.shape[0])
        return loss

    def _update_metrics(self, predictions: torch.Tensor, masks: torch.Tensor, stage: str) -> None:
        self.confusion[f"{stage}_cm"].update(predictions, masks)
        if stage != "train":
            self.dice_per_image[f"{stage}_dice"].update(predictions, masks)

    def _log_scores(self, stage: str) -> dict[str, torch.Tensor]:
        metric = self.confusion[f"{stage}_cm"]
        scores = segmentation_scores(metric.compute(), self.class_names)
        metric.reset()
        if stage != "train":
            scores["dice_per_image"] = self.dice_per_image[f"{stage}_dice"].compute()
            self.dice_per_image[f"{stage}_dice"].reset()
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items() if name != "dice"})
        self.log(f"{stage}/dice", scores["dice"], prog_bar=True)
        return scores

    def _test_confusion(self) -> torch.Tensor:
        return self.confusion["test_cm"].compute().cpu()
