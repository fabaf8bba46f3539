"""Inference modes (src/tasks/inference.py): whole, sliding window, test-time augmentation."""

import math

import pytest
import torch
from torch import nn

from src.models.unet import UNet
from src.tasks.inference import Inference


def fully_convolutional(channels: int = 3, classes: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 1)).eval()


@torch.no_grad()
def test_slide_with_stride_equal_to_the_window_equals_whole_inference_of_each_window():
    net = fully_convolutional()
    images = torch.randn(2, 3, 64, 96)  # 2 x 3 whole windows of 32
    slide = Inference(mode="slide", window=32, overlap=0.0, weighting="constant", batch=4)(net, images)
    tiles = torch.zeros(2, 2, 64, 96)
    for top in (0, 32):
        for left in (0, 32, 64):
            tiles[..., top : top + 32, left : left + 32] = net(images[..., top : top + 32, left : left + 32])
    assert torch.allclose(slide, tiles, atol=1e-5)
    assert not torch.allclose(slide, net(images), atol=1e-3)  # window borders differ from whole-image inference


@torch.no_grad()
def test_hflip_of_a_mirror_symmetric_net_and_input_equals_plain_inference():
    net = fully_convolutional()
    for conv in (net[0], net[2]):  # kernels symmetric left-right: the net commutes with the flip
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    half = torch.randn(1, 3, 40, 25)
    images = torch.cat([half, half.flip(-1)], dim=-1)  # mirror-symmetric input
    plain = Inference()(net, images)
    assert torch.allclose(Inference(hflip=True)(net, images), plain, atol=1e-5)
    assert torch.allclose(plain, plain.flip(-1), atol=1e-5)


@torch.no_grad()
def test_overlapping_slide_on_a_large_input_returns_logits_of_its_size():
    net = UNet(in_channels=3, num_classes=3, base_width=4, depth=2).eval()
    logits = Inference(mode="slide", window=256, overlap=0.5, batch=2)(net, torch.randn(1, 3, 1000, 700))
    assert logits.shape == (1, 3, 1000, 700) and torch.isfinite(logits).all()


@torch.no_grad()
def test_multi_scale_averages_views_back_at_the_input_size():
    net = fully_convolutional()
    images = torch.randn(1, 3, 48, 40)
    logits = Inference(scales=[0.5, 1.0, 1.5], hflip=True)(net, images)
    assert logits.shape == (1, 2, 48, 40)
    assert not torch.allclose(logits, net(images), atol=1e-4)


@pytest.mark.parametrize("setting, message", [
    ({"mode": "tiles"}, "task.inference.mode must be one of"),
    ({"overlap": 1.0}, r"task.inference.overlap must be in \[0, 1\)"),
    ({"scales": [0]}, "task.inference.scales must be positive"),
])  # fmt: skip
def test_bad_inference_settings_name_the_key(setting, message):
    with pytest.raises(ValueError, match=message):
        Inference(**setting)


def test_validation_and_test_run_with_sliding_windows_and_tta(train_run):
    overrides = ["task.inference.mode=slide", "task.inference.window=16", "task.inference.overlap=0.25", "task.inference.hflip=true"]
    _, metrics = train_run("debug=fast", *overrides)
    assert math.isfinite(metrics["test"]["test/loss"]) and 0 <= metrics["test"]["test/dice"] <= 1
