"""Encoders: a module mapping an image to a list of feature maps, finest first, whose channel
counts it exposes as ``channels`` (the contract the decoders build on).

torchvision's ResNets serve as encoders unchanged, so torchvision's ImageNet weights load as they are.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from src.models.blocks import DoubleConv
from src.models.weights import torchvision_state_dict

RESNETS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
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
        raise ValueError(f"model.encoder must be one of {sorted(RESNETS)}, got {name!r}")
    builder, weights = RESNETS[name]
    resnet = builder(weights=None)
    if imagenet:
        resnet.load_state_dict(torchvision_state_dict(weights))
    resnet.conv1 = adapt_first_conv(resnet.conv1, in_channels)
    return resnet


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its pooling and fc. Features: the input itself (1/1), the
    stem after its ReLU (1/2), and layer1..layer4 (1/4, 1/8, 1/16, 1/32)."""

    def __init__(self, name: str = "resnet34", in_channels: int = 3, imagenet: bool = False):
        super().__init__()
        resnet = torchvision_resnet(name, in_channels, imagenet)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        last_conv = lambda layer: layer[-1].conv3 if hasattr(layer[-1], "conv3") else layer[-1].conv2  # noqa: E731
        self.channels = [in_channels, resnet.conv1.out_channels,
                         *(last_conv(layer).out_channels for layer in (self.layer1, self.layer2, self.layer3, self.layer4))]  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        f4 = self.layer1(self.maxpool(stem))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return [x, stem, f4, f8, f16, self.layer4(f16)]


class UNetEncoder(nn.Module):
    """The U-Net contracting path: a double conv at full size, then ``depth`` steps of max-pool and
    double conv, doubling the width each time. Features at 1/1 .. 1/2**depth."""

    def __init__(self, in_channels: int = 3, base_width: int = 64, depth: int = 4, batch_norm: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"model.depth must be at least 1, got {depth}")
        self.channels = [base_width * 2**level for level in range(depth + 1)]
        self.stem = DoubleConv(in_channels, self.channels[0], batch_norm)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_out, batch_norm))
            for c_in, c_out in zip(self.channels[:-1], self.channels[1:])
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for down in self.down:
            features.append(down(features[-1]))
        return features
