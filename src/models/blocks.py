"""Building blocks shared by the encoder-decoder nets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLING_MODES = ("transpose", "bilinear")


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


def upsample2x(in_channels: int, out_channels: int, mode: str = "transpose") -> nn.Module:
    """Double the resolution: a 2x2 stride-2 transposed conv, or bilinear then a 1x1 conv."""
    if mode not in UPSAMPLING_MODES:
        raise ValueError(f"model.upsampling must be one of {UPSAMPLING_MODES}, got {mode!r}")
    if mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


class UpBlock(nn.Module):
    """U-Net decoder step: up-sample x2, concatenate the skip, double conv."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, mode: str = "transpose", batch_norm: bool = True
    ):
        super().__init__()
        self.up = upsample2x(in_channels, out_channels, mode)
        self.conv = DoubleConv(out_channels + skip_channels, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad H and W on the bottom/right up to a multiple; returns the original (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    # Exported (ONNX) graphs always pad: a branch on the size would fix the graph to one size.
    if pad_h or pad_w or torch.compiler.is_exporting():
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo pad_to_multiple: keep the top-left H x W."""
    return x[..., : size[0], : size[1]]


class SizePreserving(nn.Module):
    """Base for nets whose layers need sizes divisible by ``size_multiple``: subclasses implement
    ``forward_padded``; ``forward`` pads any input up and crops the logits back to its size."""

    size_multiple: int = 1

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.size_multiple)
        return crop_to(self.forward_padded(x), size)


class EncoderDecoder(SizePreserving):
    """The contract of seglab's encoder-decoder nets: ``encoder`` maps the (padded) image to
    feature maps, finest first, and exposes their ``channels``; ``decoder`` maps those features
    to one map of ``out_channels`` at the input's size; ``head`` (a 1x1 conv) gives the logits.
    Freezing by name (``task.freeze=[net.encoder]``), encoder weights from a file
    (``model.encoder_weights``) and the model summary rely on these names."""

    encoder_parts = ("encoder",)

    def __init__(self, encoder: nn.Module, decoder: nn.Module, num_classes: int, size_multiple: int):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.head = nn.Conv2d(decoder.out_channels, num_classes, kernel_size=1)
        self.size_multiple = size_multiple

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))
