"""Image classification by fine-tuning a torchvision ResNet50."""

from __future__ import annotations

import torch
from torch import nn

from src.models.encoders import torchvision_resnet
from src.models.weights import check_pretrained, load_pretrained_file

STAGES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")


class ResNet50Classifier(nn.Module):
    """ResNet50 with a new fc for ``num_classes``; every stage before ``trainable_from`` is frozen
    (its batch-norm statistics too)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 50,
        trainable_from: str = "layer3",
        pretrained: str | None = None,
    ):
        super().__init__()
        if trainable_from not in STAGES:
            raise ValueError(f"model.trainable_from must be one of {STAGES}, got {trainable_from!r}")
        check_pretrained(pretrained, ("imagenet",), "resnet50_classifier")
        self.resnet = torchvision_resnet("resnet50", in_channels, imagenet=pretrained == "imagenet")
        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, num_classes)
        self.frozen = [getattr(self.resnet, stage) for stage in STAGES[: STAGES.index(trainable_from)]]
        for module in self.frozen:
            module.requires_grad_(False)
        load_pretrained_file(self, pretrained)

    def train(self, mode: bool = True) -> "ResNet50Classifier":
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate (pooled, 2048-d) features, for embedding plots."""
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return torch.flatten(r.avgpool(x), 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from penultimate features."""
        return self.resnet.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
