import math

import pytest
import torch

from src.losses import BinaryCrossEntropyLoss, CrossEntropyLoss


def test_cross_entropy_on_one_channel_is_binary_cross_entropy_over_counted_pixels():
    logits = torch.tensor([[[[2.0, -1.0, 0.0, 5.0]]]])
    target = torch.tensor([[[1, 0, 255, 1]]])
    expected = (-math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1))) - math.log(1 / (1 + math.exp(-5)))) / 3
    assert math.isclose(CrossEntropyLoss()(logits, target).item(), expected, rel_tol=1e-6)
    assert math.isclose(BinaryCrossEntropyLoss()(logits, target).item(), expected, rel_tol=1e-6)


def test_two_channel_cross_entropy_equals_sigmoid_form_for_the_same_margin():
    torch.manual_seed(0)
    margin = torch.randn(2, 1, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    target[:, 0] = 255
    two = torch.cat([torch.zeros_like(margin), margin], dim=1)  # softmax([0, m]) = sigmoid(m)
    assert torch.allclose(CrossEntropyLoss()(two, target), CrossEntropyLoss()(margin, target), atol=1e-6)


def test_bce_on_a_softmax_head_says_what_to_change():
    with pytest.raises(ValueError, match="model.num_classes=1"):
        BinaryCrossEntropyLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
