"""Colourisation nets: a grey image in, per-pixel logits over ``num_classes`` colour classes out.

Each down step halves the resolution and each up step doubles it, so inputs are padded to a
multiple of 4 and the logits cropped back to the input's size.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.blocks import SizePreserving


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


def _up_conv(in_channels: int, out_channels: int, kernel: int) -> nn.ConvTranspose2d:
    """x2 transposed conv whose output is exactly twice its input for odd kernels."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, padding=kernel // 2, output_padding=1)


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class ColourNet(SizePreserving):
    """Base of the colourisation nets: checks the kernel and builds the layers (``build``) from the
    input channels, the number of colour classes, the kernel size and the base width."""

    size_multiple = 4

    def __init__(self, in_channels: int = 1, num_classes: int = 24, kernel: int = 3, num_filters: int = 32):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"model.kernel must be odd (the nets keep sizes with padding kernel // 2), got {kernel}")
        self.build(in_channels, num_classes, kernel, num_filters)

    def build(self, in_channels: int, num_classes: int, kernel: int, nf: int) -> None:
        raise NotImplementedError


class PoolUpsampleNet(ColourNet):
    """(conv, max-pool, BN, ReLU) x2, then (conv, up-sample, BN, ReLU) x2 and a final conv."""

    def build(self, in_channels: int, num_classes: int, kernel: int, nf: int) -> None:
        self.layers = nn.Sequential(
            _conv(in_channels, nf, kernel), nn.MaxPool2d(2), *_bn_relu(nf),
            _conv(nf, 2 * nf, kernel), nn.MaxPool2d(2), *_bn_relu(2 * nf),
            _conv(2 * nf, nf, kernel), nn.Upsample(scale_factor=2), *_bn_relu(nf),
            _conv(nf, num_classes, kernel), nn.Upsample(scale_factor=2), *_bn_relu(num_classes),
            _conv(num_classes, num_classes, kernel),
        )  # fmt: skip

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvTransposeNet(ColourNet):
    """Strided convs down and transposed convs up instead of pooling and up-sampling."""

    def build(self, in_channels: int, num_classes: int, kernel: int, nf: int) -> None:
        self.down1 = nn.Sequential(_conv(in_channels, nf, kernel, stride=2), *_bn_relu(nf))
        self.down2 = nn.Sequential(_conv(nf, 2 * nf, kernel, stride=2), *_bn_relu(2 * nf))
        self.up1 = nn.Sequential(_up_conv(2 * nf, nf, kernel), *_bn_relu(nf))
        self.up2 = nn.Sequential(_up_conv(self.up2_inputs(nf), num_classes, kernel), *_bn_relu(num_classes))
        self.final = _conv(self.final_inputs(num_classes, in_channels), num_classes, kernel)

    def up2_inputs(self, nf: int) -> int:
        return nf

    def final_inputs(self, num_classes: int, in_channels: int) -> int:
        return num_classes

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.up2(self.up1(self.down2(self.down1(x)))))


class ColourUNet(ConvTransposeNet):
    """ConvTransposeNet with skips: the first feature map joins the second up step's input and
    the input image joins the final conv's."""

    def up2_inputs(self, nf: int) -> int:
        return 2 * nf

    def final_inputs(self, num_classes: int, in_channels: int) -> int:
        return num_classes + in_channels

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        first = self.down1(x)
        up = self.up1(self.down2(first))
        up = self.up2(torch.cat([up, first], dim=1))
        return self.final(torch.cat([up, x], dim=1))
