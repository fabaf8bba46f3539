"""Colourisation as per-pixel classification: grey image in, one of K palette colours per pixel out."""

from __future__ import annotations

import torch

from src.tasks.segmentation import SegmentationTask


class ColourisationTask(SegmentationTask):
    """Trains a colourisation net with per-pixel cross-entropy over the datamodule's palette.

    The only score is pixel accuracy (``<stage>/acc``: the fraction of pixels given their
    palette colour); overlap scores per colour would say little. The mask-image grids show
    grey input | true colours | predicted colours, painted with the datamodule's palette.
    """

    def _update_metrics(self, predictions: torch.Tensor, masks: torch.Tensor, stage: str) -> None:
        self.confusion[f"{stage}_cm"].update(predictions, masks)

    def _log_scores(self, stage: str) -> dict[str, torch.Tensor]:
        metric = self.confusion[f"{stage}_cm"]
        confusion = metric.compute()
        metric.reset()
        accuracy = confusion.diag().sum() / confusion.sum()
        self.log(f"{stage}/acc", accuracy, prog_bar=True)
        return {"acc": accuracy}

    def _test_confusion(self) -> None:
        return None  # no per-class report over palette colours
