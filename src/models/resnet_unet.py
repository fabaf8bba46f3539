"""U-Nets on torchvision ResNet encoders: one class, the encoder depth and the decoder style are
config values (model=resnet34_unet and model=resnet50_unet are two settings of it)."""

from __future__ import annotations

from typing import Sequence

from src.models.blocks import EncoderDecoder
from src.models.decoders import CompactDecoder, UNetDecoder
from src.models.encoders import ResNetEncoder
from src.models.weights import IMAGENET_NORMALISATION, check_pretrained

DECODERS = ("compact", "unet")


class ResNetUNet(EncoderDecoder):
    """A ResNet encoder (``encoder``: resnet18, resnet34, resnet50, resnet101) and a U-Net decoder:

    - ``compact`` (the ResNet34-UNet report's): 1x1 bridge to ``bridge_channels``, four blocks
      (concatenate the skip at 1/32 .. 1/4, two conv-BN-ReLU, x2 transposed conv) of
      ``decoder_channels``, a final x2 transposed conv;
    - ``unet`` (the ResNet50-UNet report's): a two-conv bridge to ``bridge_channels``, five up
      blocks (x2 transposed conv, concatenated skip, two conv-BN-ReLU) at 1/16 .. 1/1, where the
      last skip is the input image itself;

    then a 1x1 head with no activation.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        encoder: str = "resnet34",
        decoder: str = "compact",
        decoder_channels: Sequence[int] = (32, 32, 32, 32),
        bridge_channels: int = 256,
        pretrained: str | None = None,
    ):
        check_pretrained(pretrained, ("imagenet",), f"{encoder}_unet")
        resnet = ResNetEncoder(encoder, in_channels, imagenet=pretrained == "imagenet")
        if decoder == "compact":
            head_input = CompactDecoder(resnet.channels, decoder_channels, bridge_channels)
        elif decoder == "unet":
            head_input = UNetDecoder(resnet.channels, decoder_channels, bridge_channels)
        else:
            raise ValueError(f"model.decoder must be one of {DECODERS}, got {decoder!r}")
        super().__init__(resnet, head_input, num_classes, size_multiple=32)

    def input_normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """torchvision's ResNets were trained on ImageNet-normalised images."""
        return IMAGENET_NORMALISATION
