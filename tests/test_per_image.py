"""Per-image test results: per_image.csv and the worst cases' picture."""

import csv
import math

import numpy as np
import pytest
from PIL import Image


@pytest.mark.parametrize("data", ["shapes", "shapes_multiclass"])
def test_per_image_csv_has_a_row_per_test_image_and_its_dice_mean_is_the_logged_one(train_run, data):
    run_dir, metrics = train_run(f"data={data}", "data.num_train=32", "data.num_val=16", "data.num_test=16",
                                 "debug=fast", "trainer.limit_test_batches=null")  # fmt: skip
    with (run_dir / "images" / "per_image.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 16 and len({row["name"] for row in rows}) == 16
    dice = [float(row["dice"]) for row in rows if row["dice"]]
    assert dice == sorted(dice)  # worst first
    assert np.mean(dice) == pytest.approx(metrics["test"]["test/dice_per_image"], abs=1e-6)
    if data == "shapes_multiclass":
        assert {"iou_background", "iou_circle", "iou_rectangle", "iou_triangle"} <= rows[0].keys()
    worst = Image.open(run_dir / "images" / "worst_test.png")
    shown = min(8, len(dice))
    assert worst.size == (3 * 32 + 2 * 2, shown * 32 + (shown - 1) * 2)  # image | truth | prediction, k rows


def test_per_image_scores_follow_the_per_image_dice_rules():
    import torch

    from src.metrics import per_image_scores

    masks = torch.tensor([[[0, 1], [1, 255]], [[0, 0], [0, 0]]])
    predictions = torch.tensor([[[0, 1], [0, 1]], [[0, 0], [0, 0]]])
    first, empty = per_image_scores(predictions, masks, num_classes=2)
    assert first["dice"] == pytest.approx(2 / 3) and first["iou"] == pytest.approx(1 / 2) and first["acc"] == pytest.approx(2 / 3)
    assert math.isnan(empty["dice"]) and empty["acc"] == 1.0  # no foreground anywhere: nothing to score
