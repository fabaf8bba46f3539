"""Image classification by fine-tuning a torchvision ResNet: its encoder, global pooling and a new fc.

Fine-tuning freezes early stages by name with the task's one mechanism, e.g.
``task.freeze=[net.encoder.conv1,net.encoder.bn1,net.encoder.layer1,net.encoder.layer2]``.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.encoders import ResNetEncoder
from src.models.weights import IMAGENET_NORMALISATION, check_pretrained


class ResNetClassifier(nn.Module):
    """``encoder`` (resnet18/34/50/101) up to layer4, average pooling and a new fc for ``num_classes``."""

    encoder_parts = ("encoder",)

    def __init__(self, in_channels: int = 3, num_classes: int = 50, encoder: str = "resnet50", pretrained: str | None = None):
        super().__init__()
        check_pretrained(pretrained, ("imagenet",), f"{encoder}_classifier")
        self.encoder = ResNetEncoder(encoder, in_channels, imagenet=pretrained == "imagenet")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.encoder.channels[-1], num_classes)

    def input_normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return IMAGENET_NORMALISATION

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate (pooled) features, for embedding plots."""
        return torch.flatten(self.pool(self.encoder(x)[-1]), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from penultimate features."""
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
