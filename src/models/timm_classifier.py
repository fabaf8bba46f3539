"""Image classification on any timm backbone: the backbone without its classifier, and a new
linear layer for the data's classes."""

from __future__ import annotations

import torch
from torch import nn


class TimmClassifier(nn.Module):
    """``name``: a timm model (tf_efficientnet_lite0, resnet18, convnext_tiny, ...), built without
    weights (load a file with ``model.encoder_weights``); its pooled features feed ``fc``.
    Freeze early stages by name, e.g. ``task.freeze=[net.backbone.conv_stem,net.backbone.blocks.0]``."""

    encoder_parts = ("backbone",)

    def __init__(self, in_channels: int = 3, num_classes: int = 10, name: str = "tf_efficientnet_lite0", drop_rate: float = 0.0):
        super().__init__()
        import timm

        if not timm.is_model(name):
            raise ValueError(f"model.name={name!r} is no timm model (timm.list_models() lists them)")
        self.backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels, drop_rate=drop_rate)
        self.fc = nn.Linear(self.backbone.num_features, num_classes)

    def input_normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        config = getattr(self.backbone, "pretrained_cfg", None) or {}
        return (tuple(config["mean"]), tuple(config["std"])) if "mean" in config and "std" in config else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features, for embedding plots."""
        return self.backbone(x)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
