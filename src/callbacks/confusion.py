"""The test split's confusion matrix: a printed per-class table, a CSV and a picture."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from matplotlib.figure import Figure
from rich.table import Table

from src.callbacks.figures import TestReport, publish_figure
from src.utils.log import get_logger, plain_text
from src.metrics import per_class_table
from src.utils.atomic import replacing

log = get_logger(__name__)

ANNOTATE_UP_TO = 25  # classes; beyond that the cell numbers are unreadable


def confusion_figure(confusion: torch.Tensor, class_names: list[str]) -> Figure:
    """Row-normalised confusion matrix (each true class's pixels sum to 1)."""
    counts = confusion.double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    k = len(class_names)
    size = min(4 + 0.4 * k, 16)
    figure = Figure(figsize=(size, size * 0.85), layout="constrained")  # no pyplot: no global state, no display needed
    axes = figure.subplots()
    image = axes.imshow(np.nan_to_num(rates), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    axes.set_xticks(range(k), class_names, rotation=90 if k > 6 else 0)
    axes.set_yticks(range(k), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if k <= ANNOTATE_UP_TO:
        for i in range(k):
            for j in range(k):
                if not np.isnan(rates[i, j]):
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    axes.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    axes.set_title("test confusion matrix (rows: true class)")
    return figure


def per_class_text(rows: list[dict]) -> str:
    """The per-class table as plain text (console and log file alike)."""
    table = Table(title="test split, per class")
    for column in ("class", "true", "predicted", "IoU", "Dice", "precision", "recall"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in rows:
        numbers = [f"{row[key]:.4f}" if row[key] == row[key] else "-" for key in ("iou", "dice", "precision", "recall")]
        table.add_row(row["class"], str(row["true"]), str(row["predicted"]), *numbers)
    return plain_text(table)


def write_per_class_csv(rows: list[dict], path: Path) -> None:
    with replacing(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


class ConfusionMatrixReport(TestReport):
    """After testing: prints the per-class table, writes ``per_class.csv`` and
    ``confusion_matrix.png`` into save_dir, and the picture to TensorBoard (``test/confusion_matrix``).

    Reads the task's ``test_confusion`` (K x K, rows true; None for no report) and ``class_names``.
    """

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        confusion = pl_module.test_confusion
        if confusion is None or trainer.global_rank != 0:
            return
        names = list(pl_module.class_names)
        rows = per_class_table(confusion, names)
        log.info(per_class_text(rows))
        figure = confusion_figure(confusion, names)
        publish_figure(trainer, figure, "test/confusion_matrix", self.save_dir, "confusion_matrix.png")
        if self.save_dir is not None:
            write_per_class_csv(rows, self.save_dir / "per_class.csv")
