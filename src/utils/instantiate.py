"""Building the run's objects from a composed config (shared by train, eval and predict)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a keyed group (callbacks, logger); entries set to null are skipped."""
    if not group:
        return []
    return [instantiate(entry, _convert_="all") for entry in group.values() if entry is not None]


def build_task(cfg: DictConfig):
    """The LightningModule of cfg.task, wired with the net, loss, optimizer and scheduler."""
    return instantiate(
        cfg.task,
        net=instantiate(cfg.model, _convert_="all"),
        loss=instantiate(cfg.loss, _convert_="all"),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        _convert_="all",
    )
