"""U-Net (Ronneberger, Fischer and Brox, 2015)."""

from __future__ import annotations

from src.models.blocks import EncoderDecoder
from src.models.decoders import UNetDecoder
from src.models.encoders import UNetEncoder


class UNet(EncoderDecoder):
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
        encoder = UNetEncoder(in_channels, base_width, depth, batch_norm)
        decoder = UNetDecoder(encoder.channels, encoder.channels[-2::-1], None, upsampling, batch_norm)
        super().__init__(encoder, decoder, num_classes, size_multiple=2**depth)
