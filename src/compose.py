"""Building the run's objects from a composed config (shared by train, eval, predict and the tools)."""

from __future__ import annotations

from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.models.weights import constructor_arguments, load_checked, load_encoder_weights
from src.utils.checkpoint import load_net_weights, net_weights, read_run_config
from src.utils.log import get_logger

log = get_logger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a keyed group (callbacks, logger); entries set to null are skipped."""
    if not group:
        return []
    return [instantiate(entry, _convert_="all") for entry in group.values() if entry is not None]


def build_net(model_cfg: DictConfig | dict) -> nn.Module:
    """The net of ``model_cfg``. ``model.pretrained`` as a name (imagenet, coco) is the net's own
    business; as a path (a state dict, or a checkpoint written by src.train) it is loaded here,
    once for every net, after the net is built, naming any layer that does not fit.
    ``model.encoder_weights`` as a path loads a backbone's weights into the net's encoder
    (src.models.weights.load_encoder_weights); as a name it is smp's (model=smp)."""
    config = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    config, weights_file, encoder_file = constructor_arguments(config)
    net = instantiate(config, _convert_="all")
    if weights_file is not None:
        load_checked(net, net_weights(weights_file, "model.pretrained"), f"model.pretrained={weights_file!r}")
    if encoder_file is not None:
        log.info(load_encoder_weights(net, encoder_file))
    return net


def encoder_normalisation(data_cfg: DictConfig, net: nn.Module) -> str | None:
    """Set data.mean/data.std to the encoder's pretrained convention (timm's pretrained config,
    ImageNet's for torchvision backbones) unless they are set; returns what was chosen, for the log."""
    if "mean" not in data_cfg or data_cfg.get("mean") is not None or not hasattr(net, "input_normalisation"):
        return None
    stats = net.input_normalisation()
    if stats is None or len(stats[0]) != int(data_cfg.get("in_channels", 3)):
        return None
    data_cfg.mean, data_cfg.std = [float(v) for v in stats[0]], [float(v) for v in stats[1]]
    return f"Input normalisation: mean {list(data_cfg.mean)}, std {list(data_cfg.std)} (the encoder's pretrained convention; set data.mean/data.std to change it)"


def build_task(cfg: DictConfig, net: nn.Module | None = None):
    """The LightningModule of cfg.task, wired with the net (built here unless given), loss, optimizer and scheduler."""
    return instantiate(
        cfg.task,
        net=net if net is not None else build_net(cfg.model),
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
