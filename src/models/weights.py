"""Named pretrained weights (torchvision's ImageNet and COCO files) and checked weight loading.

A net takes ``pretrained`` = null or a name it knows ('imagenet', 'coco') and loads those
weights into its encoder itself. A path (a state dict or a seglab checkpoint) is loaded once
the net is built, the same way for every net: src.utils.instantiate.build_net.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

MAX_LISTED = 8
PRETRAINED_NAMES = ("imagenet", "coco")


def torchvision_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's pretrained state dict, from the torch hub cache or downloaded into it
    (read as plain data only)."""
    try:
        return weights.get_state_dict(progress=True, check_hash=False, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        raise RuntimeError(
            f"could not download the pretrained weights {weights} ({error}). Without network, download\n"
            f"  {weights.url}\non a machine that has it and place the file at\n  {cache}\n"
            "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it), or use model.pretrained=null"
        ) from error


def check_pretrained(pretrained: str | None, allowed: tuple[str, ...], model: str) -> None:
    """Refuse a weights name this net does not have (and a path, which build_net loads)."""
    if pretrained is None or pretrained in allowed:
        return
    if pretrained in PRETRAINED_NAMES:
        options = ", ".join(["null", *allowed, "a path to a state dict"])
        raise ValueError(f"model.pretrained={pretrained!r} is not available for {model}; choose {options}")
    raise ValueError(
        f"model.pretrained={pretrained!r}: a file of weights is loaded after the net is built; build it with "
        "src.utils.instantiate.build_net (as src.train does), or call load_checked(net, state, source)"
    )


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
