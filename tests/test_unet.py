import pytest
import torch

from src.models.unet import UNet


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
@pytest.mark.parametrize("num_classes", [1, 2, 21])
def test_logits_have_input_size(upsampling, size, num_classes):
    net = UNet(in_channels=3, num_classes=num_classes, base_width=4, depth=4, upsampling=upsampling)
    logits = net(torch.randn(2, 3, *size))
    assert logits.shape == (2, num_classes, *size)


def test_original_unet_has_31_million_parameters():
    # Ronneberger et al.: base width 64, four down-samplings, transposed convs, no batch norm.
    net = UNet(in_channels=3, num_classes=2, base_width=64, depth=4, batch_norm=False, upsampling="transpose")
    assert count_parameters(net) == 31_031_810


def test_channel_widths_double_per_level():
    net = UNet(in_channels=3, num_classes=2, base_width=8, depth=3)
    assert [down[1][0].out_channels for down in net.encoder.down] == [16, 32, 64]
    assert net.encoder.channels == [8, 16, 32, 64]
    assert net.head.in_channels == 8


def test_unknown_upsampling_is_rejected_by_name():
    with pytest.raises(ValueError, match="model.upsampling"):
        UNet(upsampling="nearest")
