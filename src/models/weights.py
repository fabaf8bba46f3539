"""Pretrained weights: torchvision's ImageNet files, or a state dict / seglab checkpoint on disk.

Loading goes through ``torch.load(weights_only=True)``, and a mismatch fails with the names of
the layers that differ instead of a wall of missing keys.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

MAX_LISTED = 8


def imagenet_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's pretrained state dict, from the torch hub cache or downloaded into it."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=True, check_hash=False)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise RuntimeError(
            f"could not download the pretrained weights {weights} ({error}). Without network, download\n"
            f"  {weights.url}\non a machine that has it and place the file at\n  {cache}\n"
            "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it), or use model.pretrained=null"
        ) from error


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain state dict, or the net's weights out of a seglab/Lightning checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained={str(path)!r}: no such file (expected a state dict or a .ckpt)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = {key[len("net.") :]: value for key, value in state["state_dict"].items() if key.startswith("net.")}
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: holds no model weights (expected a state dict or a checkpoint written by src.train)")
    return state


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def load_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that names the layers that are missing, unexpected or of another shape."""
    own = module.state_dict()
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
        for key in own.keys() & state.keys()
        if state[key].shape != own[key].shape
    ]
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if wrong_shape or missing or unexpected:
        problems = []
        if wrong_shape:
            problems.append(f"layers of another shape (file vs model): {_listed(sorted(wrong_shape))}")
        if missing:
            problems.append(f"layers the file lacks: {_listed(missing)}")
        if unexpected:
            problems.append(f"layers the model lacks: {_listed(unexpected)}")
        raise ValueError(
            f"{source} does not fit {type(module).__name__} (another architecture or class count?): "
            + "; ".join(problems)
        )
    module.load_state_dict(state)


def load_pretrained_file(module: nn.Module, pretrained: str | None) -> None:
    """Apply ``model.pretrained`` when it is a path (names like 'imagenet' are handled by the model)."""
    if pretrained and pretrained not in PRETRAINED_NAMES:
        load_checked(module, read_state_dict(pretrained), f"model.pretrained={pretrained!r}")


PRETRAINED_NAMES = ("imagenet", "coco")


def check_pretrained(pretrained: str | None, allowed: tuple[str, ...], model: str) -> None:
    if pretrained in PRETRAINED_NAMES and pretrained not in allowed:
        options = ", ".join(["null", *allowed, "a path to a state dict"])
        raise ValueError(f"model.pretrained={pretrained!r} is not available for {model}; choose {options}")
