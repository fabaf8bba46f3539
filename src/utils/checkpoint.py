"""The checkpoint format, in one place: reading (position, stored config, net weights) and writing.

A seglab checkpoint is Lightning's (``epoch``, ``global_step``, ``state_dict`` with the task's
``net.`` prefix, optimizer and callback states) plus the run's resolved config as plain data
under ``seglab_config``. Every read goes through ``torch.load(weights_only=True)``, so a file
carrying pickled code is refused, not run. No other module calls ``torch.load``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf

from src.models.weights import load_checked

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


def load_net_weights(net: torch.nn.Module, path: str | Path) -> None:
    """Load a checkpoint's net weights into ``net``, reading the whole file: a file damaged anywhere,
    or a net built with other settings (a layer of another shape), is refused naming the problem."""
    load_checked(net, net_weights(path), f"ckpt_path={path}")


def read_run_config(ckpt_path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved config stored in a checkpoint by src.train, with ``key=value`` overrides applied,
    for rebuilding its model: ``model.pretrained`` is cleared, as the checkpoint's weights replace
    any starting weights (and loading them may need a download).

    Loads plain data only, memory-mapped, so no code runs and the weights are not read. An
    override must name a key the config has (e.g. ``data.root=...``).
    """
    state = read_file(ckpt_path, mmap=True)
    if not isinstance(state, dict) or CONFIG_KEY not in state:
        raise ValueError(f"ckpt_path={ckpt_path}: holds no '{CONFIG_KEY}'; only checkpoints written by src.train carry their config")
    if state.get(FORMAT_KEY, 1) != FORMAT:
        raise ValueError(
            f"ckpt_path={ckpt_path}: written by seglab's checkpoint format {state.get(FORMAT_KEY, 1)}, this is format "
            f"{FORMAT}: the nets' layer names changed when they became encoder / decoder / head. Use that checkpoint "
            "with the seglab version that wrote it, or train again."
        )
    cfg = OmegaConf.create(state[CONFIG_KEY])
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key, separator, value = override.partition("=")
        if not separator:
            raise ValueError(f"{override!r}: overrides are key=value, e.g. data.root=/data/pets")
        if OmegaConf.select(cfg, key.lstrip("+"), default=_MISSING) is _MISSING and not key.startswith("+"):
            raise KeyError(f"{key}: not a key of the checkpoint's config (prefix with + to add one)")
        OmegaConf.update(cfg, key.lstrip("+"), yaml.safe_load(value) if value else None, force_add=True)
    if "pretrained" in cfg.get("model", {}):
        cfg.model.pretrained = None
    if "encoder_weights" in cfg.get("model", {}):  # a file or a download: the checkpoint's weights replace them
        cfg.model.encoder_weights = None
    return cfg


_MISSING = object()


def register_checkpoint_config(argv: Sequence[str], program: str) -> None:
    """Before Hydra composes conf/eval.yaml or conf/predict.yaml: store the config of the checkpoint
    named on the command line as ``checkpoint_config``, the first entry of their defaults, so that
    Hydra checks each override against the training run's keys. (In a sweep over ckpt_path, the
    first one's.) A config-group choice (model=..., data=...) is refused: the weights belong to it."""
    from hydra.core.config_store import ConfigStore

    given = next((arg.partition("=")[2] for arg in argv if arg.startswith("ckpt_path=")), None)
    stored = OmegaConf.to_container(read_run_config(given.split(",")[0])) if given else {}
    choices = [arg for arg in argv if isinstance(stored.get(arg.partition("=")[0].lstrip("+~")), dict) and "=" in arg]
    if choices:
        raise ValueError(
            f"{', '.join(choices)}: {program} keeps the checkpoint's config-group choices, which its weights belong to. "
            "Override single keys (e.g. data.root=..., task.inference.mode=slide), or use a checkpoint trained with that choice."
        )
    ConfigStore.instance().store(name="checkpoint_config", node=stored)


def resume_command_line(argv: Sequence[str]) -> list[str]:
    """Before Hydra composes conf/train.yaml for a resume (``ckpt_path=`` on the command line):
    an override of a key that the checkpoint's config has but conf/'s defaults lack (data.root of
    a run on data=folder, when the default data=shapes has none) is made ``++key=value``, so that
    Hydra lets it through to resume_config, which checks it against the checkpoint's config."""
    given = next((arg.partition("=")[2] for arg in argv if arg.startswith("ckpt_path=")), None)
    if not given:
        return list(argv)
    try:
        stored = read_run_config(given.split(",")[0])
    except Exception:  # a missing or foreign checkpoint: src.train names it in one line
        return list(argv)
    rewritten = []
    for arg in argv:
        key, separator, _ = arg.partition("=")
        own = key.startswith(("+", "~", "-", "hydra.", "hydra/")) or key == "ckpt_path" or "." not in key
        if separator and not own and OmegaConf.select(stored, key, default=_MISSING) is not _MISSING:
            arg = f"++{arg}"
        rewritten.append(arg)
    return rewritten


def resume_config(ckpt_path: str | Path, overrides: Sequence[str], groups: set[str], run_dir: str) -> DictConfig:
    """The config a resumed run continues with: the checkpoint's own (not conf/'s defaults), with
    the command line's key=value overrides applied (e.g. ``trainer.max_epochs=100``) and its
    run paths moved to ``run_dir`` when the run now lives somewhere else.

    Config-group choices (``model=...``, ``data=...``) cannot change: the weights, optimizer
    state and data order belong to the checkpoint's choices.
    """
    changed = [o for o in overrides if o.partition("=")[0].lstrip("+~") in groups]
    if changed:
        raise ValueError(
            f"{', '.join(changed)}: a resumed run keeps the checkpoint's config-group choices. "
            "Override single keys (e.g. trainer.max_epochs=100), or start a new run to change a choice."
        )
    cfg = read_run_config(ckpt_path, [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.", "hydra/"))])
    config = OmegaConf.to_container(cfg)
    config = moved_under(config, str(config["paths"]["output_dir"]), str(run_dir))
    config["ckpt_path"] = str(ckpt_path)
    return OmegaConf.create(config)


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
