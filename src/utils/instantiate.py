"""Building the run's objects from a composed config (shared by train, eval, predict and the tools)."""

from __future__ import annotations

from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.models.weights import PRETRAINED_NAMES, load_checked
from src.utils.checkpoint import load_net_weights, net_weights, read_run_config


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a keyed group (callbacks, logger); entries set to null are skipped."""
    if not group:
        return []
    return [instantiate(entry, _convert_="all") for entry in group.values() if entry is not None]


def build_net(model_cfg: DictConfig | dict) -> nn.Module:
    """The net of ``model_cfg``. ``model.pretrained`` as a name (imagenet, coco) is the net's own
    business; as a path (a state dict, or a checkpoint written by src.train) it is loaded here,
    once for every net, after the net is built, naming any layer that does not fit."""
    config = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    weights_file = config.get("pretrained")
    if weights_file is not None and weights_file not in PRETRAINED_NAMES:
        config["pretrained"] = None
    else:
        weights_file = None
    net = instantiate(config, _convert_="all")
    if weights_file is not None:
        load_checked(net, net_weights(weights_file, "model.pretrained"), f"model.pretrained={weights_file!r}")
    return net


def build_task(cfg: DictConfig):
    """The LightningModule of cfg.task, wired with the net, loss, optimizer and scheduler."""
    return instantiate(
        cfg.task,
        net=build_net(cfg.model),
        loss=instantiate(cfg.loss, _convert_="all"),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        _convert_="all",
    )


def load_trained_task(ckpt_path: str, overrides: Sequence[str] = ()):
    """(config, task) of a checkpoint: its segmentation task and net, weights loaded (plain data
    only), in eval mode; ``overrides`` (key=value) change the stored config, e.g. task.inference.mode=slide."""
    cfg = read_run_config(ckpt_path, overrides)
    task = build_task(cfg)
    if not task.makes_masks:
        raise ValueError(f"ckpt_path={ckpt_path}: a {type(task).__name__}; only segmentation models make masks")
    load_net_weights(task.net, ckpt_path)
    return cfg, task.eval()
