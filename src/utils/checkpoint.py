"""The checkpoint format, in one place: reading (position, stored config, net weights) and writing.
Rebuilding a run from a checkpoint's config is src.compose's.

A seglab checkpoint is Lightning's (``epoch``, ``global_step``, ``state_dict`` with the task's
``net.`` prefix, optimizer and callback states) plus the run's resolved config as plain data
under ``seglab_config``. Every read goes through ``torch.load(weights_only=True)``, so a file
carrying pickled code is refused, not run. No other module calls ``torch.load``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback

CONFIG_KEY = "seglab_config"
# Version 2: nets as encoder / decoder / head (layer names changed with it, 2026-11-29).
FORMAT_KEY, FORMAT = "seglab_format", 2
NET_PREFIX = "net."  # the task's attribute holding the net (src/tasks/base.py)


def read_file(path: str | Path, what: str = "ckpt_path", mmap: bool = False) -> Any:
    """A torch file loaded as plain data (weights_only); ``what`` names the setting in errors.
    Memory-mapped, a checkpoint's tensors are not read until used."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}={path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # pickle refusals and corrupt files alike
        raise ValueError(f"{what}={path}: not a loadable checkpoint ({type(error).__name__}: {error})") from None


def checkpoint_position(path: str | Path) -> dict[str, int]:
    """Epoch and step stored in a checkpoint, and the early-stopping counter where the run had
    early stopping (memory-mapped: reads only what it needs)."""
    state = read_file(path, mmap=True)
    position = {"epoch": int(state["epoch"]), "global_step": int(state["global_step"])}
    for name, callback_state in state.get("callbacks", {}).items():
        if name.startswith("EarlyStopping"):
            position["early_stopping_wait"] = int(callback_state["wait_count"])
    return position


def net_weights(path: str | Path, what: str = "ckpt_path") -> dict[str, torch.Tensor]:
    """The net's state dict: a plain state dict file as it is, or the net's part of a seglab
    (Lightning) checkpoint with the task's prefix removed."""
    state = read_file(path, what)
    if isinstance(state, dict) and "state_dict" in state:
        state = {key[len(NET_PREFIX):]: value for key, value in state["state_dict"].items() if key.startswith(NET_PREFIX)}
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{what}={path}: holds no model weights (expected a state dict or a checkpoint written by src.train)")
    return state


def moved_under(node: Any, old: str, new: str) -> Any:
    """Every string path under ``old`` rewritten to lie under ``new``."""
    if isinstance(node, dict):
        return {key: moved_under(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [moved_under(value, old, new) for value in node]
    if isinstance(node, str) and (node == old or node.startswith(old.rstrip("/") + "/")):
        return new + node[len(old):]
    return node


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it and renames it into place, so a process
    killed at any moment leaves the previous file whole. Written straight to the file (Lightning's
    own atomic save first builds the whole checkpoint in memory: twice the copying). A failed
    write (disk full, directory unwritable) removes the partial file, keeps the previous
    checkpoint and says which file and why. Remote paths (s3://, gs://...) go to Lightning's.

    In an epoch with a new best, best.ckpt and last.ckpt hold the same training state (epoch,
    step, weights, optimizer; only the two checkpoint callbacks' bookkeeping differs): the second
    is then a hard link to the first, not a second write of the same bytes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._previous: tuple[tuple, Path] | None = None  # (training state, file) of the last save

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        state = (checkpoint.get("epoch"), checkpoint.get("global_step"), frozenset(checkpoint))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self._link_same_state(state, path, temporary):
                with open(temporary, "wb") as file:
                    torch.save(checkpoint, file)
            os.replace(temporary, path)
            self._previous = (state, path)
            for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free / 2**20 if path.parent.is_dir() else 0.0
            raise CheckpointWriteError(
                f"could not write checkpoint {path}: {error.strerror or error} ({free:.0f} MiB free on its disk). "
                f"{'The previous ' + path.name + ' is kept. ' if path.exists() else ''}"
                "Free space or choose another directory with paths.output_dir=..., then resume from "
                "checkpoints/last.ckpt."
            ) from error

    def _link_same_state(self, state: tuple, path: Path, temporary: Path) -> bool:
        if self._previous is None:
            return False
        previous_state, previous_path = self._previous
        if previous_state != state or previous_path == path or previous_path.parent != path.parent:
            return False
        try:
            os.link(previous_path, temporary)
        except OSError:  # no hard links here (some network file systems): write the bytes
            return False
        return True


def check_room_for_checkpoints(folder: Path, module: torch.nn.Module) -> None:
    """Fail before training, not at the first epoch's end, where the run's checkpoint folder cannot
    be written or its disk cannot hold best.ckpt and last.ckpt (weights and optimizer moments,
    estimated as 3x the weights, each), plus a temporary copy while one is replaced."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CheckpointWriteError(
            f"cannot write checkpoints to {folder}: {error.strerror or error}. "
            "Choose a writable place for the run with paths.output_dir=... (or hydra.run.dir=...)."
        ) from None
    weights = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    need, free = 3 * 3 * weights, shutil.disk_usage(folder).free
    if free < need:
        raise CheckpointWriteError(
            f"{folder}: {free / 2**20:.0f} MiB free, but this run's checkpoints need about {need / 2**20:.0f} MiB "
            f"(best.ckpt and last.ckpt, about {3 * weights / 2**20:.0f} MiB each, and a temporary copy). "
            "Free space, or put the run elsewhere with paths.output_dir=...."
        )


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the file and what to do."""


class ConfigInCheckpoint(Callback):
    """Adds the resolved config (a plain dict) and the format version to every checkpoint the trainer writes."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config
        checkpoint[FORMAT_KEY] = FORMAT
