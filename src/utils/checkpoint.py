"""Checkpoints carry their run's resolved config as plain data (no pickled objects)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback

CONFIG_KEY = "seglab_config"


class ConfigInCheckpoint(Callback):
    """Adds the resolved config (a plain dict) to every checkpoint the trainer writes."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config
