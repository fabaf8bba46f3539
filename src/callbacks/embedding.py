"""After testing a classifier: a t-SNE map of the test images' penultimate features, by class."""

from __future__ import annotations


import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from src.callbacks.figures import TestReport, publish_figure
from src.utils.log import get_logger

log = get_logger(__name__)


def tsne_2d(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """N x D features -> N x 2 points (t-SNE; perplexity capped below N as t-SNE requires)."""
    count = features.shape[0]
    perplexity = float(min(30.0, max(1.0, (count - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features.numpy())


def embedding_figure(points: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Figure:
    figure = Figure(figsize=(7, 6), layout="constrained")
    axes = figure.subplots()
    colours = colormaps["tab20" if len(class_names) > 10 else "tab10"].resampled(max(len(class_names), 1))
    for k, name in enumerate(class_names):
        chosen = labels == k
        if chosen.any():
            axes.scatter(points[chosen, 0], points[chosen, 1], s=12, color=colours(k), label=name)
    if len(class_names) <= 20:
        axes.legend(fontsize=7, markerscale=1.5, loc="best")
    axes.set_title(f"t-SNE of penultimate features, {len(labels)} test images")
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


class EmbeddingPlot(TestReport):
    """Writes ``embedding.png`` into save_dir and, to TensorBoard, the picture (``test/embedding``)
    and the features with their class names for TensorBoard's projector.

    Reads ``pl_module.test_embeddings`` (features N x D, labels N) set by the classification task.
    """

    def __init__(self, save_dir: str | None = None, min_points: int = 5):
        super().__init__(save_dir)
        self.min_points = min_points

    @rank_zero_only
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        embeddings = pl_module.test_embeddings
        if embeddings is None:
            return
        features, labels = embeddings
        if len(labels) < self.min_points:
            log.info("Embedding plot skipped: %d test images, t-SNE needs at least %d.", len(labels), self.min_points)
            return
        names = list(pl_module.class_names)
        figure = embedding_figure(tsne_2d(features), labels.numpy(), names)
        publish_figure(trainer, figure, "test/embedding", self.save_dir, "embedding.png")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_embedding(features, metadata=[names[k] for k in labels.tolist()],
                                                global_step=trainer.global_step, tag="test/features")  # fmt: skip
