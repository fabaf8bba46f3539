"""The classification LightningModule: top-1/top-5 accuracy and test-time embeddings."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from src.metrics import confusion_matrix
from src.tasks.base import STAGES, Task


class ClassificationTask(Task):
    """Trains a net mapping B x C x H x W to logits B x K on batches ``{"image", "label"}``.

    Logs ``<stage>/loss``, ``<stage>/acc`` (top-1) and ``<stage>/top5`` once per epoch. At test
    time it keeps the class confusion matrix and, for nets with ``features`` and ``classify``
    (penultimate features, then the last layer), the test images' features for the embedding plot.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        num_classes = self.num_classes
        top_k = min(5, num_classes)
        self.accuracy = nn.ModuleDict({f"{s}_acc": MulticlassAccuracy(num_classes, average="micro") for s in STAGES})
        self.top5 = nn.ModuleDict({f"{s}_top5": MulticlassAccuracy(num_classes, top_k=top_k, average="micro") for s in STAGES})
        self.test_cm = confusion_matrix(num_classes)
        self._features: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        images, labels = batch["image"], batch["label"]
        if stage == "test" and hasattr(self.net, "features") and hasattr(self.net, "classify"):
            features = self.net.features(images)
            logits = self.net.classify(features)
            self._features.append(features.detach().float().cpu())
            self._labels.append(labels.cpu())
        else:
            logits = self(images)
        loss = self.loss(logits, labels)
        self.accuracy[f"{stage}_acc"].update(logits.detach(), labels)
        self.top5[f"{stage}_top5"].update(logits.detach(), labels)
        if stage == "test":
            self.test_cm.update(logits.detach().argmax(dim=1), labels)
        self._log_loss(loss, stage, images.shape[0])
        return loss

    def _log_scores(self, stage: str) -> dict[str, torch.Tensor]:
        scores = {"acc": self.accuracy[f"{stage}_acc"].compute(), "top5": self.top5[f"{stage}_top5"].compute()}
        self.accuracy[f"{stage}_acc"].reset()
        self.top5[f"{stage}_top5"].reset()
        self.log(f"{stage}/acc", scores["acc"], prog_bar=True)
        self.log(f"{stage}/top5", scores["top5"])
        return scores

    def on_test_epoch_start(self) -> None:
        self._features, self._labels = [], []

    def _test_confusion(self) -> torch.Tensor:
        confusion = self.test_cm.compute().cpu()
        self.test_cm.reset()
        return confusion

    def on_test_epoch_end(self) -> None:
        if self._features:
            self.test_embeddings = (torch.cat(self._features), torch.cat(self._labels))
        super().on_test_epoch_end()
