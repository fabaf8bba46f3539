"""Segmentation losses. Each takes logits B x K x H x W and a class-id mask B x H x W whose
ignore_index pixels count nowhere. K = 1 is a sigmoid head (binary masks); K >= 2 softmax."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _binary_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    pos_weight: torch.Tensor | None = None,
    pixel_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean BCE over the pixels that are not ignored, without a host sync (no boolean indexing)."""
    valid = target != ignore_index
    labels = (target == 1).to(logits.dtype)
    if label_smoothing:
        labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
    losses = F.binary_cross_entropy_with_logits(logits[:, 0], labels, reduction="none", pos_weight=pos_weight)
    weight = valid.to(logits.dtype) if pixel_weight is None else pixel_weight * valid
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


class CrossEntropyLoss(nn.Module):
    """Softmax cross-entropy for K >= 2; for a 1-channel head the equivalent sigmoid BCE."""

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        weights = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            pixel_weight = None
            if self.class_weights is not None:
                pixel_weight = self.class_weights[target.clamp(0, 1)]
            return _binary_cross_entropy(
                logits, target, self.ignore_index, pixel_weight=pixel_weight, label_smoothing=self.label_smoothing
            )
        return F.cross_entropy(
            logits,
            target,
            weight=self.class_weights,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class BinaryCrossEntropyLoss(nn.Module):
    """BCE with logits for a 1-channel head; ``pos_weight`` scales the foreground term."""

    def __init__(self, ignore_index: int = 255, pos_weight: float | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("pos_weight", None if pos_weight is None else torch.tensor(float(pos_weight)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != 1:
            raise ValueError(
                f"loss=bce needs a 1-channel (sigmoid) head, but the model gives {logits.shape[1]} channels: "
                "set model.num_classes=1, or use loss=ce for a softmax head"
            )
        return _binary_cross_entropy(logits, target, self.ignore_index, pos_weight=self.pos_weight)
