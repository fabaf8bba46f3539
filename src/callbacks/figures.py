"""Publishing a matplotlib figure: to every TensorBoard logger and, optionally, as a PNG file."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from src.utils.atomic import save_figure


class TestReport(Callback):
    """Base of the callbacks that report on the test split into ``save_dir`` (None: TensorBoard only)."""

    def __init__(self, save_dir: str | None = None):
        self.save_dir = Path(save_dir) if save_dir else None


def publish_figure(trainer: Trainer, figure: Figure, tag: str, save_dir: Path | None, filename: str) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        save_figure(figure, save_dir / filename, dpi=100)
