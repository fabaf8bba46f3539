"""U-Net (Ronneberger, Fischer and Brox, 2015)."""

from __future__ import annotations

import torch
from torch import nn

from src.models.blocks import DoubleConv, crop_to, pad_to_multiple

UPSAMPLING_MODES = ("transpose", "bilinear")


class Up(nn.Module):
    """Double the resolution and halve the channels, concatenate the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int, mode: str, batch_norm: bool):
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )
        self.conv = DoubleConv(2 * out_channels, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """The original U-Net, with width, depth, batch norm and up-sampling configurable.

    ``depth`` is the number of 2x down-samplings (4 in the paper: 64 -> 1024 channels at
    ``base_width`` 64). Inputs of any size are zero-padded to a multiple of ``2**depth`` and
    the logits cropped back, so the output always has the input's spatial size.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        base_width: int = 64,
        depth: int = 4,
        batch_norm: bool = True,
        upsampling: str = "transpose",
    ):
        super().__init__()
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"model.upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
        if depth < 1:
            raise ValueError(f"model.depth must be at least 1, got {depth}")
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0], batch_norm)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_out, batch_norm))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.up = nn.ModuleList(
            Up(c_in, c_out, upsampling, batch_norm) for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.size_multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.size_multiple)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return crop_to(self.head(x), size)
