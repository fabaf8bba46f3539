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


def _probabilities_and_targets(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class probabilities P and one-hot targets T, both B x C x H x W.

    A 1-channel head scores its single foreground channel (sigmoid); a K-channel head all K
    classes (softmax). Ignored pixels are zero in both P and T, so they count nowhere.
    """
    valid = (target != ignore_index).unsqueeze(1)
    labels = target.masked_fill(~valid.squeeze(1), 0)
    if logits.shape[1] == 1:
        probabilities = torch.sigmoid(logits)
        targets = (labels == 1).unsqueeze(1).to(logits.dtype)
    else:
        probabilities = logits.softmax(dim=1)
        targets = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    return probabilities * valid, targets * valid


class _SoftOverlapLoss(nn.Module):
    """1 - mean over scored classes of a smoothed overlap score of P and T, summed over the batch."""

    def __init__(self, ignore_index: int = 255, smooth: float = 1.0):
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def overlap(self, intersection: torch.Tensor, predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, t = _probabilities_and_targets(logits, target, self.ignore_index)
        dims = (0, 2, 3)
        return 1 - self.overlap((p * t).sum(dims), p.sum(dims), t.sum(dims)).mean()


class DiceLoss(_SoftOverlapLoss):
    """Soft Dice, 1 - (2 sum(P T) + s) / (sum(P) + sum(T) + s); the mean over classes for a
    K-channel head, the foreground for a 1-channel head."""

    def overlap(self, intersection, predicted, true):
        return (2 * intersection + self.smooth) / (predicted + true + self.smooth)


class IoULoss(_SoftOverlapLoss):
    """Soft Jaccard, 1 - (I + s) / (U + s) with I = sum(P T), U = sum(P) + sum(T) - I; for a
    1-channel head the foreground probability, for K channels the mean over classes."""

    def overlap(self, intersection, predicted, true):
        return (intersection + self.smooth) / (predicted + true - intersection + self.smooth)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.), mean over counted pixels: torchvision's sigmoid_focal_loss for a
    1-channel head (``alpha`` weights the foreground, null for none); for K channels
    -(1 - p_t)^gamma log p_t, with ``alpha`` ignored unless given per class."""

    def __init__(self, ignore_index: int = 255, gamma: float = 2.0, alpha: float | Sequence[float] | None = 0.25):
        super().__init__()
        self.ignore_index, self.gamma = ignore_index, gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        count = valid.sum().clamp_min(1)
        if logits.shape[1] == 1:
            from torchvision.ops import sigmoid_focal_loss

            alpha = -1 if self.alpha is None else float(self.alpha)
            losses = sigmoid_focal_loss(logits[:, 0], (target == 1).to(logits.dtype), alpha=alpha, gamma=self.gamma)
            return (losses * valid).sum() / count
        log_p = F.log_softmax(logits, dim=1).gather(1, target.masked_fill(~valid, 0).unsqueeze(1)).squeeze(1)
        losses = -((1 - log_p.exp()) ** self.gamma) * log_p
        if isinstance(self.alpha, Sequence):
            losses = losses * logits.new_tensor(list(self.alpha))[target.masked_fill(~valid, 0)]
        return (losses * valid).sum() / count


class WeightedSum(nn.Module):
    """sum_i weight_i * loss_i, e.g. loss=dice_ce with loss.weights=[0.5,0.5]."""

    def __init__(self, losses: dict[str, nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        if weights is not None and len(weights) != len(losses):
            raise ValueError(f"loss.weights has {len(weights)} numbers for {len(losses)} losses ({', '.join(losses)})")
        self.losses = nn.ModuleDict(losses)
        self.weights = list(weights) if weights is not None else [1.0] * len(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * loss(logits, target) for w, loss in zip(self.weights, self.losses.values()))
