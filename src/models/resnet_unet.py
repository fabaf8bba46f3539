"""U-Nets with torchvision ResNet encoders."""

from __future__ import annotations

import torch
from torch import nn

from src.models.blocks import DoubleConv, SizePreserving, UpBlock
from src.models.encoders import ResNetEncoder
from src.models.weights import check_pretrained, load_pretrained_file


class ConcatConvUp(nn.Sequential):
    """Decoder step of the ResNet34-UNet: (input already concatenated) double conv, then x2 transposed conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            DoubleConv(in_channels, out_channels, batch_norm=True),
            nn.ConvTranspose2d(out_channels, out_channels, kernel_size=2, stride=2),
        )


class ResNet34UNet(SizePreserving):
    """ResNet34 encoder (skips at 1/4, 1/8, 1/16, 1/32), 1x1 bridge 512 -> 256 with batch norm and
    ReLU, four decoder blocks (concatenate the skip, two 3x3 conv + BN + ReLU, x2 transposed
    conv) of ``decoder_channels``, a final x2 transposed conv and a 1x1 head (no activation)."""

    size_multiple = 32

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        decoder_channels: int = 32,
        bridge_channels: int = 256,
        pretrained: str | None = None,
    ):
        super().__init__()
        check_pretrained(pretrained, ("imagenet",), "resnet34_unet")
        self.encoder = ResNetEncoder("resnet34", in_channels, imagenet=pretrained == "imagenet")
        deepest = self.encoder.channels[-1]
        self.bridge = nn.Sequential(
            nn.Conv2d(deepest, bridge_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(bridge_channels),
            nn.ReLU(inplace=True),
        )
        skips = self.encoder.channels[:0:-1]  # 1/32, 1/16, 1/8, 1/4
        inputs = [bridge_channels] + [decoder_channels] * (len(skips) - 1)
        self.decoder = nn.ModuleList(
            ConcatConvUp(c_in + c_skip, decoder_channels) for c_in, c_skip in zip(inputs, skips)
        )
        self.final_up = nn.ConvTranspose2d(decoder_channels, decoder_channels, kernel_size=2, stride=2)
        self.head = nn.Conv2d(decoder_channels, num_classes, kernel_size=1)
        load_pretrained_file(self, pretrained)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[:0:-1]  # 1/32 first; the stem's 1/2 map is not a skip here
        x = self.bridge(features[0])
        for block, skip in zip(self.decoder, features):
            x = block(torch.cat([x, skip], dim=1))
        return self.head(self.final_up(x))


class ResNet50UNet(SizePreserving):
    """ResNet50 (bottleneck) encoder, a two-conv bridge at 1/32, and up blocks (x2 transposed conv,
    concatenated skip, two conv blocks) at 1/16, 1/8, 1/4, 1/2 and the input's size, where the
    skip is the input image itself; then a 1x1 head."""

    size_multiple = 32

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 22,
        bridge_channels: int = 1024,
        decoder_channels: tuple[int, ...] = (512, 256, 128, 64, 32),
        pretrained: str | None = None,
    ):
        super().__init__()
        check_pretrained(pretrained, ("imagenet",), "resnet50_unet")
        if len(decoder_channels) != 5:
            raise ValueError(f"model.decoder_channels needs 5 widths (1/16 .. 1/1), got {list(decoder_channels)}")
        self.encoder = ResNetEncoder("resnet50", in_channels, imagenet=pretrained == "imagenet")
        self.bridge = DoubleConv(self.encoder.channels[-1], bridge_channels)
        skips = [*self.encoder.channels[-2::-1], in_channels]  # 1/16, 1/8, 1/4, 1/2, 1/1
        inputs = [bridge_channels, *decoder_channels[:-1]]
        self.decoder = nn.ModuleList(
            UpBlock(c_in, c_skip, c_out) for c_in, c_skip, c_out in zip(inputs, skips, decoder_channels)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=1)
        load_pretrained_file(self, pretrained)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        skips = [*features[-2::-1], x]
        x = self.bridge(features[-1])
        for block, skip in zip(self.decoder, skips):
            x = block(x, skip)
        return self.head(x)
