"""ModelCheckpoint that keeps its best score across a resume from a moved or copied run folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from src.utils.checkpoint import moved_under
from src.utils.log import get_logger

log = get_logger(__name__)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, except on resume: when the checkpoint's folder is not this
    run's (the run was copied or moved), Lightning forgets the best score and the next epoch,
    however bad, overwrites best.ckpt. Here the score, the top-k bookkeeping and their paths are
    restored with the paths moved into this run's folder, so best.ckpt is only replaced by a
    better epoch wherever the run now lives."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if not old or not new or old == new:
            super().load_state_dict(state_dict)
            return
        state = moved_under(state_dict, old, new)  # dirpath and the best, kth and last paths
        if "best_k_models" in state:  # keyed by path
            state["best_k_models"] = {moved_under(path, old, new): score for path, score in state["best_k_models"].items()}
        super().load_state_dict(state)
        if not self.monitor or self.best_model_score is None:
            return
        kept = f"Checkpoints moved from {old} to {new}: best {self.monitor} {float(self.best_model_score):.4f} kept"
        previous = Path(state_dict.get("best_model_path") or "")
        if self.best_model_path and not Path(self.best_model_path).is_file() and previous.is_file():
            # Resumed into another folder while the old one is still there: the best epoch's file comes along.
            Path(self.best_model_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(previous, self.best_model_path)
            kept += f", its checkpoint copied from {previous}"
        elif self.best_model_path and not Path(self.best_model_path).is_file():
            kept += f" (its file {self.best_model_path} is not here; only a better epoch writes a new one)"
        log.info(kept)
