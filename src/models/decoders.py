"""Decoders: from an encoder's feature maps (finest first, channels ``encoder_channels``) to one
map of ``out_channels`` at the input's size."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from src.models.blocks import DoubleConv, UpBlock


class UNetDecoder(nn.Module):
    """U-Net's expanding path: optionally a double-conv bridge on the deepest map, then one
    ``UpBlock`` (x2 up-sampling, concatenated skip, double conv) per shallower map, of ``widths``."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        widths: Sequence[int],
        bridge_channels: int | None = None,
        upsampling: str = "transpose",
        batch_norm: bool = True,
    ):
        super().__init__()
        skips = list(encoder_channels[-2::-1])
        if len(widths) != len(skips):
            raise ValueError(f"model.decoder_channels needs {len(skips)} widths (one per skip), got {list(widths)}")
        deepest = encoder_channels[-1]
        self.bridge = DoubleConv(deepest, bridge_channels, batch_norm) if bridge_channels else nn.Identity()
        inputs = [bridge_channels or deepest, *widths[:-1]]
        self.blocks = nn.ModuleList(
            UpBlock(c_in, c_skip, c_out, upsampling, batch_norm) for c_in, c_skip, c_out in zip(inputs, skips, widths)
        )
        self.out_channels = widths[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.bridge(features[-1])
        for block, skip in zip(self.blocks, features[-2::-1]):
            x = block(x, skip)
        return x


class CompactDecoder(nn.Module):
    """The ResNet34-UNet report's decoder: a 1x1 bridge (conv, BN, ReLU) on the deepest map, then
    per map from 1/32 to 1/4 (the bridge's input first): concatenate, two conv-BN-ReLU, x2
    transposed conv; a final x2 transposed conv back to the input's size."""

    def __init__(self, encoder_channels: Sequence[int], widths: Sequence[int], bridge_channels: int = 256):
        super().__init__()
        skips = list(encoder_channels[:-len(widths) - 1:-1])  # the len(widths) deepest maps, deepest first
        if len(widths) != 4 or len(skips) != 4:
            raise ValueError(f"model.decoder_channels needs 4 widths (1/32 .. 1/4), got {list(widths)}")
        self.bridge = nn.Sequential(
            nn.Conv2d(encoder_channels[-1], bridge_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(bridge_channels),
            nn.ReLU(inplace=True),
        )
        inputs = [bridge_channels, *widths[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(DoubleConv(c_in + c_skip, c_out), nn.ConvTranspose2d(c_out, c_out, kernel_size=2, stride=2))
            for c_in, c_skip, c_out in zip(inputs, skips, widths)
        )
        self.final_up = nn.ConvTranspose2d(widths[-1], widths[-1], kernel_size=2, stride=2)
        self.out_channels = widths[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        deepest_first = features[: -len(self.blocks) - 1 : -1]
        x = self.bridge(deepest_first[0])
        for block, skip in zip(self.blocks, deepest_first):
            x = block(torch.cat([x, skip], dim=1))
        return self.final_up(x)
