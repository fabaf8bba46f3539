"""Publishing pictures (mask grids, confusion matrices, worst cases) to every logger of the run:
TensorBoard as images and figures, MLflow as PNG artifacts under the tag, Weights & Biases as
images; CSV keeps numbers only. Optionally also as a PNG file in the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure

from src.utils.atomic import save_figure


class TestReport(Callback):
    """Base of the callbacks that report on the test split into ``save_dir`` (None: loggers only)."""

    def __init__(self, save_dir: str | None = None):
        self.save_dir = Path(save_dir) if save_dir else None


def figure_pixels(figure: Figure) -> np.ndarray:
    """A drawn matplotlib figure as an H x W x 3 uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def publish_image(trainer: Trainer, image: np.ndarray, tag: str, loggers: list | None = None) -> None:
    """An H x W x 3 uint8 picture to every logger that keeps pictures (or those given), at the current step."""
    step = trainer.global_step
    for logger in trainer.loggers if loggers is None else loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, global_step=step, dataformats="HWC")
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, image, artifact_file=f"{tag}/step_{step:06d}.png")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[image], step=step)


def publish_figure(trainer: Trainer, figure: Figure, tag: str, save_dir: Path | None, filename: str) -> None:
    others = [logger for logger in trainer.loggers if isinstance(logger, (MLFlowLogger, WandbLogger))]
    if others:
        publish_image(trainer, figure_pixels(figure), tag, others)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        save_figure(figure, save_dir / filename, dpi=100)
