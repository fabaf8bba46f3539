"""Fully convolutional networks on VGG16 (Long, Shelhamer and Darrell, 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from src.models.blocks import SizePreserving
from src.models.encoders import adapt_first_conv
from src.models.weights import IMAGENET_NORMALISATION, check_pretrained, torchvision_state_dict

POOL3, POOL4 = 17, 24  # torchvision vgg16.features: indices just past the 3rd and 4th max-pool


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Transposed-conv weights that up-sample each channel bilinearly (and mix none)."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """x``factor`` transposed conv, initialised as bilinear interpolation (learnable)."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


class FullyConnectedConv(nn.Conv2d):
    """VGG's fc6 applied as a 7x7 convolution over the 1/32 feature map.

    On CPU, over the few positions of that map, oneDNN's backward pass for this 102 M-weight
    kernel is ~17x slower than the same product written as im2col + one matrix multiply
    (6.3 s against 0.36 s at 2x2, batch 4), so small maps on CPU take that path. The weights
    keep nn.Conv2d's layout, so state dicts and ImageNet weights load unchanged.
    """

    GEMM_MAX_POSITIONS = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if x.device.type != "cpu" or torch.compiler.is_exporting() or h * w > self.GEMM_MAX_POSITIONS:
            return super().forward(x)
        columns = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        out = self.weight.flatten(1) @ columns
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.view(b, self.out_channels, h, w)


class _FCN(SizePreserving):
    """VGG16 features; fc6 (7x7) and fc7 (1x1) as convolutions with dropout; a 1x1 score layer."""

    size_multiple = 32
    # The VGG16 backbone (model.encoder_weights loads a torchvision vgg16 state dict into these).
    encoder_parts = ("to_pool3", "to_pool4", "to_pool5", "fc6", "fc7")

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 21,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        pretrained: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__.lower()
        check_pretrained(pretrained, ("imagenet",), name)
        vgg = torchvision.models.vgg16(weights=None)
        if pretrained == "imagenet":
            vgg.load_state_dict(torchvision_state_dict(torchvision.models.VGG16_Weights.IMAGENET1K_V1))
        features = vgg.features
        features[0] = adapt_first_conv(features[0], in_channels)
        self.to_pool3, self.to_pool4, self.to_pool5 = features[:POOL3], features[POOL3:POOL4], features[POOL4:]
        self.fc6 = FullyConnectedConv(512, fc_channels, kernel_size=7, padding=3)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout)
        if pretrained == "imagenet":
            if fc_channels != 4096:
                raise ValueError("model.pretrained=imagenet needs model.fc_channels=4096 (VGG16's classifier width)")
            with torch.no_grad():  # VGG16's fully connected layers, reshaped into convolutions
                self.fc6.weight.copy_(vgg.classifier[0].weight.view(4096, 512, 7, 7))
                self.fc6.bias.copy_(vgg.classifier[0].bias)
                self.fc7.weight.copy_(vgg.classifier[3].weight.view(4096, 4096, 1, 1))
                self.fc7.bias.copy_(vgg.classifier[3].bias)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, kernel_size=1)
        self.build_decoder(num_classes)

    def build_decoder(self, num_classes: int) -> None:
        raise NotImplementedError

    @staticmethod
    def rename_pretrained(key: str) -> str:
        """torchvision's vgg16 layer names as this net's: features.i -> to_poolN.i (slices of vgg.features
        keep its indices), classifier.0/3 -> fc6/fc7."""
        if key.startswith("features."):
            index = int(key.split(".")[1])
            part = "to_pool3" if index < POOL3 else "to_pool4" if index < POOL4 else "to_pool5"
            return part + key[len("features"):]
        return {"classifier.0": "fc6", "classifier.3": "fc7"}.get(key.rsplit(".", 1)[0], key.rsplit(".", 1)[0]) + "." + key.rsplit(".", 1)[1]

    def input_normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return IMAGENET_NORMALISATION

    def fc(self, x: torch.Tensor) -> torch.Tensor:
        """fc6 and fc7, each with ReLU and dropout."""
        return self.dropout(F.relu(self.fc7(self.dropout(F.relu(self.fc6(x))))))


class FCN32s(_FCN):
    """One x32 transposed conv from the fc7 scores."""

    def build_decoder(self, num_classes: int) -> None:
        self.up32 = bilinear_upsampler(num_classes, 32)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.up32(self.score_fr(self.fc(self.to_pool5(self.to_pool4(self.to_pool3(x))))))


class FCN8s(_FCN):
    """fc7 scores x2, plus pool4 scores, x2, plus pool3 scores, x8."""

    def build_decoder(self, num_classes: int) -> None:
        self.score_pool4 = nn.Conv2d(512, num_classes, kernel_size=1)
        self.score_pool3 = nn.Conv2d(256, num_classes, kernel_size=1)
        for score in (self.score_pool4, self.score_pool3):  # start as FCN32s: the skips add nothing yet
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        self.up2_fr = bilinear_upsampler(num_classes, 2)
        self.up2_pool4 = bilinear_upsampler(num_classes, 2)
        self.up8 = bilinear_upsampler(num_classes, 8)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        scores = self.up2_fr(self.score_fr(self.fc(self.to_pool5(pool4))))
        scores = self.up2_pool4(scores + self.score_pool4(pool4))
        return self.up8(scores + self.score_pool3(pool3))
