"""U-Net (Ronneberger, Fischer and Brox, 2015)."""

from __future__ import annotations

import torch
from torch import nn

from src.models.blocks import DoubleConv, SizePreserving, UpBlock


class UNet(SizePreserving):
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
        if depth < 1:
            raise ValueError(f"model.depth must be at least 1, got {depth}")
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0], batch_norm)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_out, batch_norm))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.up = nn.ModuleList(
            UpBlock(c_in, c_out, c_out, upsampling, batch_norm) for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.size_multiple = 2**depth

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)
