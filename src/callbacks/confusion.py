"""The test split's confusion matrix: a printed per-class table, a CSV and a picture."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from src.callbacks.figures import publish_figure
from src.metrics import per_class_table

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


def print_per_class_table(rows: list[dict], console: Console | None = None) -> None:
    table = Table(title="test split, per class")
    for column in ("class", "true", "predicted", "IoU", "Dice", "precision", "recall"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in rows:
        numbers = [f"{row[key]:.4f}" if row[key] == row[key] else "-" for key in ("iou", "dice", "precision", "recall")]
        table.add_row(row["class"], str(row["true"]), str(row["predicted"]), *numbers)
    (console or Console()).print(table)


def write_per_class_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


class ConfusionMatrixReport(Callback):
    """After testing: prints the per-class table, writes ``per_class.csv`` and
    ``confusion_matrix.png`` into save_dir, and the picture to TensorBoard (``test/confusion_matrix``).

    Reads ``pl_module.test_confusion`` (K x K, rows true) and ``pl_module.class_names``.
    """

    def __init__(self, save_dir: str | None = None):
        self.save_dir = Path(save_dir) if save_dir else None

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        confusion = getattr(pl_module, "test_confusion", None)
        if confusion is None:
            return
        names = list(pl_module.class_names)
        rows = per_class_table(confusion, names)
        print_per_class_table(rows)
        figure = confusion_figure(confusion, names)
        publish_figure(trainer, figure, "test/confusion_matrix", self.save_dir, "confusion_matrix.png")
        if self.save_dir is not None:
            write_per_class_csv(rows, self.save_dir / "per_class.csv")
