"""Building blocks shared by the encoder-decoder nets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional) batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            # A conv followed by batch norm needs no bias: the norm's shift replaces it.
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad H and W on the bottom/right up to a multiple; returns the original (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo pad_to_multiple: keep the top-left H x W."""
    return x[..., : size[0], : size[1]]
