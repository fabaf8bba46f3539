import math

import pytest
import torch

from src.metrics import PerImageDice, confusion_matrix, hard_predictions, segmentation_scores


def scores_for(preds, target, num_classes, names=None, ignore_index=255):
    metric = confusion_matrix(num_classes, ignore_index)
    metric.update(preds, target)
    return segmentation_scores(metric.compute(), names)


def test_scores_match_hand_computation_with_ignored_pixels():
    target = torch.tensor([[[0, 0, 1, 1], [1, 1, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1, 1], [0, 1, 0, 1]]])
    scores = scores_for(preds, target, 2, ["background", "shape"])
    # Counted pixels (6): bg tp=1 fn=1 fp=1; fg tp=3 fn=1 fp=1. The two ignored pixels count nowhere.
    assert math.isclose(scores["iou_shape"], 3 / 5, rel_tol=1e-6)
    assert math.isclose(scores["iou_background"], 1 / 3, rel_tol=1e-6)
    assert math.isclose(scores["dice"], 2 * 3 / (2 * 3 + 1 + 1), rel_tol=1e-6)  # foreground dice
    assert math.isclose(scores["miou"], (3 / 5 + 1 / 3) / 2, rel_tol=1e-6)
    assert math.isclose(scores["acc"], 4 / 6, rel_tol=1e-6)


def test_absent_class_is_left_out_of_the_mean_not_counted_as_perfect():
    target = torch.tensor([[[0, 0, 1, 1]]])
    preds = torch.tensor([[[0, 0, 1, 0]]])
    scores = scores_for(preds, target, 3)
    assert math.isnan(scores["iou_2"])  # class 2: neither in truth nor prediction
    assert math.isclose(scores["miou"], (2 / 3 + 1 / 2) / 2, rel_tol=1e-6)
    assert math.isclose(scores["dice"], (2 * 2 / 5 + 2 * 1 / 3) / 2, rel_tol=1e-6)  # macro over present classes


def test_sigmoid_and_softmax_heads_score_the_same_hard_predictions():
    torch.manual_seed(0)
    target = torch.randint(0, 2, (2, 16, 16))
    target[0, :3] = 255
    wanted = torch.randint(0, 2, (2, 16, 16))
    # A 1-channel logit and a 2-channel logit pair that both predict `wanted`.
    magnitude = torch.rand(2, 16, 16) + 0.1
    sigmoid_logits = torch.where(wanted == 1, magnitude, -magnitude)[:, None]
    softmax_logits = torch.stack([-sigmoid_logits[:, 0], sigmoid_logits[:, 0]], dim=1) * 3
    binary = hard_predictions(sigmoid_logits)
    two_class = hard_predictions(softmax_logits)
    assert torch.equal(binary, wanted) and torch.equal(two_class, wanted)
    assert scores_for(binary, target, 2) == scores_for(two_class, target, 2)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_multi_class_predictions_are_the_argmax_over_channels_with_the_first_class_on_ties(memory_format):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 9, 7).round(decimals=1).contiguous(memory_format=memory_format)  # rounded: many ties
    logits[0, :, 0, 0] = 2.0  # all five classes tied: class 0
    logits[1, 3:, 1, 1] = 9.0  # classes 3 and 4 tied above the rest: class 3
    predictions = hard_predictions(logits)
    assert predictions.shape == (3, 9, 7) and predictions.dtype == torch.long
    assert torch.equal(predictions, logits.argmax(dim=1))
    assert predictions[0, 0, 0] == 0 and predictions[1, 1, 1] == 3


def test_threshold_moves_the_sigmoid_decision():
    logits = torch.tensor([[[[0.5]]]])  # sigmoid(0.5) = 0.62
    assert hard_predictions(logits, threshold=0.5).item() == 1
    assert hard_predictions(logits, threshold=0.7).item() == 0


def test_per_image_dice_averages_images_and_skips_those_with_nothing_to_score():
    target = torch.tensor([[[0, 0, 1, 1], [1, 1, 255, 255]], [[0, 0, 0, 0], [0, 0, 0, 0]], [[1, 1, 1, 1], [0, 0, 0, 0]]])
    preds = torch.tensor([[[0, 1, 1, 1], [0, 1, 0, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]], [[1, 1, 0, 0], [0, 0, 0, 0]]])
    binary = PerImageDice(2)
    binary.update(preds, target)
    # Image 1: tp 3, fp 1, fn 1 (ignored pixels count nowhere) -> 6/8; image 2: no foreground
    # anywhere, left out; image 3: tp 2 of 4 true, 2 predicted -> 4/6. Dataset-level Dice differs.
    assert math.isclose(binary.compute(), (6 / 8 + 4 / 6) / 2, rel_tol=1e-6)
    assert not math.isclose(scores_for(preds, target, 2)["dice"], binary.compute(), rel_tol=1e-3)
    three = PerImageDice(3)  # class 2 absent everywhere; background counts for K > 2
    three.update(preds, target)
    image_1 = (2 * 1 / (2 + 2) + 6 / 8) / 2  # bg: tp 1 of 2 true, 2 predicted
    image_2 = 1.0  # all background, all right; classes 1 and 2 absent, left out
    image_3 = (2 * 4 / (4 + 6) + 4 / 6) / 2  # bg: tp 4 of 4 true, 6 predicted
    assert math.isclose(three.compute(), (image_1 + image_2 + image_3) / 3, rel_tol=1e-6)


def test_per_image_dice_is_the_same_for_sigmoid_and_softmax_predictions():
    torch.manual_seed(1)
    target = torch.randint(0, 2, (3, 8, 8))
    logits = torch.randn(3, 1, 8, 8)
    results = []
    for head in (logits, torch.cat([-logits, logits], dim=1)):
        metric = PerImageDice(2)
        metric.update(hard_predictions(head), target)
        results.append(metric.compute())
    assert torch.equal(results[0], results[1])
