"""torchvision backbones as encoders, so that torchvision's ImageNet weights load unchanged."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from src.models.weights import imagenet_state_dict

RESNETS = {
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V2),
    "resnet101": (torchvision.models.resnet101, torchvision.models.ResNet101_Weights.IMAGENET1K_V2),
}


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The same conv for another number of input channels; RGB filters are averaged, so a
    pretrained stem still responds to brightness in a grey image."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
    return new


def torchvision_resnet(name: str, in_channels: int = 3, imagenet: bool = False) -> torchvision.models.ResNet:
    if name not in RESNETS:
        raise ValueError(f"model.backbone must be one of {sorted(RESNETS)}, got {name!r}")
    builder, weights = RESNETS[name]
    resnet = builder(weights=None)
    if imagenet:
        resnet.load_state_dict(imagenet_state_dict(weights))
    resnet.conv1 = adapt_first_conv(resnet.conv1, in_channels)
    return resnet


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its pooling and fc; returns the features at 1/2 (after the
    stem's ReLU), 1/4, 1/8, 1/16 and 1/32 of the input."""

    def __init__(self, name: str = "resnet34", in_channels: int = 3, imagenet: bool = False):
        super().__init__()
        resnet = torchvision_resnet(name, in_channels, imagenet)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.channels = [
            resnet.conv1.out_channels,
            *(layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
              for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)),
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        f4 = self.layer1(self.maxpool(stem))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return [stem, f4, f8, f16, self.layer4(f16)]
