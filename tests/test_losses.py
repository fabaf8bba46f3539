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


# Hand-computed cases. One-channel head: sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25, sigmoid(0) = 0.5;
# the third pixel is ignored (255) and must count nowhere.
BINARY_LOGITS = torch.tensor([[[[math.log(3), -math.log(3), 0.0, 0.0]]]])
BINARY_TARGET = torch.tensor([[[1, 0, 255, 1]]])
# Three-class head: softmax of log-probabilities gives the probabilities back; class 2 is absent
# from the truth, the third pixel ignored.
PROBS = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.1, 0.1, 0.8]])
MULTI_LOGITS = PROBS.log().T.reshape(1, 3, 1, 3)
MULTI_TARGET = torch.tensor([[[0, 1, 255]]])


def test_dice_by_hand():
    from src.losses import DiceLoss

    # foreground: sum(PT) = 0.75 + 0.5, sum(P) = 0.75 + 0.25 + 0.5, sum(T) = 2
    assert DiceLoss(smooth=0.0)(BINARY_LOGITS, BINARY_TARGET).item() == pytest.approx(1 - 2.5 / 3.5)
    assert DiceLoss(smooth=1.0)(BINARY_LOGITS, BINARY_TARGET).item() == pytest.approx(1 - 3.5 / 4.5)
    # classes 0 and 1: (2*0.5 + 1) / (0.75 + 1 + 1); absent class 2: (0 + 1) / (0.5 + 0 + 1)
    expected = 1 - (2 * (2 / 2.75) + 1 / 1.5) / 3
    assert DiceLoss(smooth=1.0)(MULTI_LOGITS, MULTI_TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_iou_by_hand():
    from src.losses import IoULoss

    # I = 1.25, U = 1.5 + 2 - 1.25 = 2.25
    assert IoULoss(smooth=0.0)(BINARY_LOGITS, BINARY_TARGET).item() == pytest.approx(1 - 1.25 / 2.25)
    # classes 0 and 1: I = 0.5, U = 0.75 + 1 - 0.5 = 1.25; class 2: I = 0, U = 0.5
    expected = 1 - (2 * (0.5 + 1) / (1.25 + 1) + (0 + 1) / (0.5 + 1)) / 3
    assert IoULoss(smooth=1.0)(MULTI_LOGITS, MULTI_TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_focal_by_hand():
    from src.losses import FocalLoss

    ln = math.log
    expected = (0.25 * 0.25**2 * -ln(0.75) + 0.75 * 0.25**2 * -ln(0.75) + 0.25 * 0.5**2 * -ln(0.5)) / 3
    assert FocalLoss(gamma=2.0, alpha=0.25)(BINARY_LOGITS, BINARY_TARGET).item() == pytest.approx(expected, rel=1e-5)
    # K channels: both counted pixels have p_t = 0.5
    assert FocalLoss(gamma=2.0)(MULTI_LOGITS, MULTI_TARGET).item() == pytest.approx(0.25 * ln(2), rel=1e-5)
    # gamma = 0 and no alpha is plain cross-entropy
    assert FocalLoss(gamma=0.0, alpha=None)(MULTI_LOGITS, MULTI_TARGET).item() == pytest.approx(
        CrossEntropyLoss()(MULTI_LOGITS, MULTI_TARGET).item(), rel=1e-5
    )


def test_weighted_sum_from_its_config(tmp_path):
    from hydra.utils import instantiate

    from src.losses import DiceLoss
    from tests.conftest import compose_config

    loss = instantiate(compose_config("train", ["loss=dice_ce", "loss.weights=[0.3,0.7]"], tmp_path).loss, _convert_="all")
    expected = 0.3 * DiceLoss()(MULTI_LOGITS, MULTI_TARGET) + 0.7 * CrossEntropyLoss()(MULTI_LOGITS, MULTI_TARGET)
    assert loss(MULTI_LOGITS, MULTI_TARGET).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["ce", "bce", "dice", "iou", "focal", "dice_ce"])
def test_every_loss_config_ignores_ignored_pixels_and_has_gradients(name, tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    loss = instantiate(compose_config("train", [f"loss={name}"], tmp_path).loss, _convert_="all")
    heads = [1] if name == "bce" else [1, 2, 4]
    for channels in heads:
        torch.manual_seed(channels)
        logits = torch.randn(2, channels, 6, 6, requires_grad=True)
        target = torch.randint(0, max(channels, 2), (2, 6, 6))
        target[:, :2] = 255
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value) and logits.grad[:, :, :2].abs().max() == 0  # ignored pixels get no gradient
        changed = logits.detach().clone()
        changed[:, :, :2] += 100.0  # what the model says on ignored pixels must not matter
        assert loss(changed, target).item() == pytest.approx(value.item(), rel=1e-5)
