"""Settings chosen for speed: precision=auto and the channels_last memory format."""

import functools

import pytest
import torch

from src.losses import CrossEntropyLoss
from src.models.resnet_unet import ResNet34UNet
from src.tasks.segmentation import SegmentationTask
from src.utils import hardware
from src.utils.hardware import auto_precision


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_is_bf16_only_where_the_hardware_runs_it_fast(monkeypatch, fast_bf16, expected):
    monkeypatch.setattr(hardware, "bf16_supported", lambda accelerator: fast_bf16)
    precision, why = auto_precision("auto", "auto")
    assert precision == expected and why.startswith("auto:")


@pytest.mark.parametrize("configured", ["32-true", "16-mixed", "bf16-mixed", 32])
def test_an_explicit_precision_is_kept(monkeypatch, configured):
    monkeypatch.setattr(hardware, "bf16_supported", lambda accelerator: True)
    assert auto_precision(configured, "auto") == (str(configured), "as configured")


def test_cpu_bf16_support_follows_onednn(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for supported in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: supported)
        assert hardware.bf16_supported("cpu") is supported
        assert hardware.bf16_supported("auto") is supported


def task_with(channels_last: bool) -> SegmentationTask:
    torch.manual_seed(0)
    net = ResNet34UNet(in_channels=3, num_classes=3, decoder_channels=8, bridge_channels=16)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return SegmentationTask(net, CrossEntropyLoss(), optimizer, num_classes=3, channels_last=channels_last)


def test_channels_last_converts_the_net_and_gives_the_same_outputs():
    nhwc, nchw = task_with(True).eval(), task_with(False).eval()
    conv_weights = [p for p in nhwc.net.parameters() if p.dim() == 4]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in nchw.net.parameters() if p.dim() == 4)
    images = torch.randn(2, 3, 64, 64)  # NCHW from the loader, as always
    with torch.no_grad():
        out_nhwc, out_nchw = nhwc(images), nchw(images)
    assert out_nhwc.shape == out_nchw.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out_nhwc, out_nchw, rtol=1e-4, atol=1e-4)
