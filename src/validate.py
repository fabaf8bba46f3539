"""Checks of a composed config that fail at once, before any data is read, naming the key."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.class_weights import SCHEMES as CLASS_WEIGHT_SCHEMES
from src.metrics import check_head
from src.models.weights import constructor_arguments


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what it accepts."""


# trainer.max_epochs >= 1: Lightning's -1 (no limit) would give the cosine schedule T_max=-1, a run
# that never ends at a learning rate that drops to 0 every other epoch.
WHOLE_NUMBERS = {"data.batch_size": 1, "data.image_size": 1, "data.num_classes": 2, "data.n_aug": 0, "trainer.max_epochs": 1}
NON_NEGATIVE_NUMBERS = ["optimizer.lr"]  # 0 freezes the weights: of use in tests and probes


def check_config(cfg: DictConfig) -> None:
    for key, least in WHOLE_NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"{key} must be a whole number >= {least}, got {value!r}")
    for key in NON_NEGATIVE_NUMBERS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
            raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
    check_accelerator(cfg)
    check_logger_packages(cfg)
    check_model_takes_the_data(cfg)


# logger class -> (the package it needs, the extra that installs it)
LOGGER_PACKAGES = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}


def check_logger_packages(cfg: DictConfig) -> None:
    """A logger whose package is not installed: one line naming the extra, before anything is built."""
    import importlib.util

    for name, entry in (cfg.get("logger") or {}).items():
        target = str((entry or {}).get("_target_", "")).rsplit(".", 1)[-1]
        package, extra = LOGGER_PACKAGES.get(target, (None, None))
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger.{name} ({target}) needs the {package} package, not installed here: "
                              f'pip install -e ".[{extra}]" (or pip install {package})')  # fmt: skip


def check_accelerator(cfg: DictConfig) -> None:
    """trainer=gpu on a machine without one: said before anything is built, not as Lightning's
    'No supported gpu backend found!' inside a Hydra instantiation block."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator} (trainer=gpu), but no GPU is visible to PyTorch here "
                "(torch.cuda.is_available() is False): use trainer=default (picks what there is) or trainer=cpu"
            )


def check_model_takes_the_data(cfg: DictConfig) -> None:
    """Run the net on a training batch's shape on the meta device (shapes only: no memory, no
    arithmetic), so a size the net cannot take fails now rather than after the data is read."""
    if "model" not in cfg or "data" not in cfg or "image_size" not in cfg.data:
        return
    # The shapes do not depend on the weights: none are read (nor downloaded) here.
    model_cfg = constructor_arguments(OmegaConf.to_container(cfg.model, resolve=True))[0]
    for key in ("pretrained", "encoder_weights"):
        if key in model_cfg:
            model_cfg[key] = None
    size, batch = cfg.data.get("crop_size") or cfg.data.image_size, cfg.data.batch_size
    channels = OmegaConf.select(cfg, "data.in_channels", default=3)
    with torch.device("meta"):
        net = instantiate(model_cfg, _convert_="all").train()
        smallest = int(getattr(net, "size_multiple", 1))
        if size < smallest:  # padded up to it, the net would run, learn next to nothing, and score 0 without a word
            raise ConfigError(
                f"data.image_size={size}: {cfg.model._target_} takes inputs of at least {smallest} px (its deepest "
                f"features are 1/{smallest} of the input); choose data.image_size >= {smallest}"
            )
        try:
            logits = net(torch.empty(batch, channels, size, size))
        except (RuntimeError, ValueError) as error:
            raise ConfigError(
                f"data.image_size={size}: {cfg.model._target_} cannot train on {batch} x {channels} x {size} x {size} "
                f"batches ({str(error).splitlines()[0]}); choose a larger data.image_size or data.batch_size"
            ) from None
    if logits.dim() == 4:  # a segmentation head: its channels against the classes and the loss
        check_head_and_loss(cfg, logits.shape[1])


def check_head_and_loss(cfg: DictConfig, channels: int) -> None:
    """The model's head fits the data's class count, and the loss takes that head: run the loss
    on a 1 x channels x 2 x 2 batch of zeros (no data needed)."""
    num_classes = cfg.data.num_classes
    try:
        check_head(channels, num_classes)
    except ValueError as error:
        raise ConfigError(f"model.num_classes={channels}: {error}") from None
    if "loss" in cfg:
        loss_cfg = OmegaConf.to_container(cfg.loss, resolve=True)
        for node in [loss_cfg, *[v for v in loss_cfg.get("losses", {}).values() if isinstance(v, dict)]]:
            if isinstance(node.get("class_weights"), str):  # a scheme: its numbers come from the data, later
                if node["class_weights"] not in CLASS_WEIGHT_SCHEMES:
                    raise ConfigError(f"loss.class_weights={node['class_weights']!r}: use null, a list of "
                                      f"{num_classes} numbers, or one of {CLASS_WEIGHT_SCHEMES}")  # fmt: skip
                node["class_weights"] = None
        loss = instantiate(loss_cfg, _convert_="all")
        try:
            loss(torch.zeros(1, channels, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
        except ValueError as error:
            raise ConfigError(str(error)) from None
