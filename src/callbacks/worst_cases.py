"""After testing a segmentation task: every test image's scores, and a picture of the worst ones."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from src.callbacks.figures import TestReport, publish_image
from src.callbacks.mask_images import items_batch, prediction_grid
from src.metrics import metric_key
from src.utils.atomic import replacing, save_image


def ranked_worst_first(rows: list[dict]) -> list[dict]:
    """Lowest Dice first; images with nothing to score (Dice NaN) last."""
    return sorted(rows, key=lambda row: (math.isnan(row["dice"]), row["dice"], row["name"]))


def write_per_image_csv(rows: list[dict], class_names: list[str], path: Path) -> None:
    """name, dice, iou, acc (and iou_<class> for more than two classes), one row per image; then
    each class's intersection and union in pixels (inter_<class>, union_<class>), from which the
    dataset-level IoU of any subset of the images follows (src.report's bootstrap)."""
    per_class = len(class_names) > 2
    keys = [metric_key(n) for n in class_names]
    counts = "intersection_per_class" in (rows[0] if rows else {})
    with replacing(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "dice", "iou", "acc"] + ([f"iou_{k}" for k in keys] if per_class else [])
                        + ([f"inter_{k}" for k in keys] + [f"union_{k}" for k in keys] if counts else []))  # fmt: skip
        for row in rows:
            cells = [row["dice"], row["iou"], row["acc"]] + (row["iou_per_class"] if per_class else [])
            pixels = row["intersection_per_class"] + row["union_per_class"] if counts else []
            writer.writerow([row["name"]] + ["" if math.isnan(v) else f"{v:.6f}" for v in cells] + [str(v) for v in pixels])


class WorstCases(TestReport):
    """Writes ``per_image.csv`` (the task's ``test_per_image``, worst Dice first) and
    ``worst_test.png`` (image | truth | prediction of the ``count`` lowest) into save_dir, and the
    picture to TensorBoard as ``test/worst``."""

    def __init__(self, save_dir: str | None = None, count: int = 8):
        super().__init__(save_dir)
        self.count = count

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rows = pl_module.test_per_image
        if not pl_module.makes_masks or not rows:
            return
        ranked = ranked_worst_first(rows)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            write_per_image_csv(ranked, list(pl_module.class_names), self.save_dir / "per_image.csv")
        dataset = getattr(trainer.datamodule, "datasets", {}).get("test")
        worst = [row["name"] for row in ranked[: self.count] if not math.isnan(row["dice"])]
        if dataset is None or not worst or self.count <= 0:
            return
        position = {name: index for index, name in enumerate(dataset.names)}
        grid = prediction_grid(pl_module, items_batch(dataset, [position[n] for n in worst], trainer.datamodule), trainer.datamodule)
        publish_image(trainer, grid, "test/worst")
        if self.save_dir is not None:
            save_image(grid, self.save_dir / "worst_test.png")
