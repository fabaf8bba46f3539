"""Composition, the floor of the entry points: a run's objects built from its config, and a
trained run loaded back from its checkpoint (its stored config, the command line's overrides, the
net with its weights). Application code: it imports models, data and tasks, which import nothing
from here. The checkpoint file itself (format, reading, writing) is src.utils.checkpoint's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.models.weights import constructor_arguments, load_checked, load_encoder_weights
from src.utils.checkpoint import CONFIG_KEY, FORMAT, FORMAT_KEY, moved_under, net_weights, read_file
from src.utils.log import get_logger
from src.utils.overrides import split_override

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


def load_net_weights(net: nn.Module, path: str | Path) -> None:
    """Load a checkpoint's net weights into ``net``, reading the whole file: a file damaged anywhere,
    or a net built with other settings (a layer of another shape), is refused naming the problem."""
    load_checked(net, net_weights(path), f"ckpt_path={path}")


_MISSING = object()


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], what: str = "the checkpoint's config") -> DictConfig:
    """``key=value`` overrides applied to ``cfg`` (values read as YAML); a key ``cfg`` lacks is refused
    unless prefixed with +."""
    for override in overrides:
        key, value = split_override(override)
        if value is None:
            raise ValueError(f"{override!r}: overrides are key=value, e.g. data.root=/data/pets")
        if OmegaConf.select(cfg, key.lstrip("+"), default=_MISSING) is _MISSING and not key.startswith("+"):
            raise KeyError(f"{key}: not a key of {what} (prefix with + to add one)")
        OmegaConf.update(cfg, key.lstrip("+"), yaml.safe_load(value) if value else None, force_add=True)
    return cfg


def read_run_config(ckpt_path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved config stored in a checkpoint by src.train, with ``key=value`` overrides applied,
    for rebuilding its model: ``model.pretrained`` and ``model.encoder_weights`` are cleared, as the
    checkpoint's weights replace any starting weights (and loading them may need a download).

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
    apply_overrides(cfg, overrides)
    for key in ("pretrained", "encoder_weights"):  # a file or a download: the checkpoint's weights replace them
        if key in cfg.get("model", {}):
            cfg.model[key] = None
    return cfg


def exported_run_config(onnx_path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The run config that src.export stored in the model.json beside an exported model, with overrides."""
    from src.exported import model_card

    stored = model_card(onnx_path).get("run_config")
    if not stored:
        raise ValueError(f"onnx_path={onnx_path}: its model.json holds no run config (exported before seglab stored it); export again")
    cfg = OmegaConf.create(stored)
    OmegaConf.set_struct(cfg, True)
    return apply_overrides(cfg, overrides, f"{onnx_path}'s run config")


def load_run(path: str | Path, overrides: Sequence[str] = (), run_dir: str | Path | None = None, with_task: bool = True):
    """A trained run, loaded back: ``(config, task)``, from a checkpoint or from an exported
    ``model.onnx`` (fp32 or INT8, with its model.json). The config is the run's own with the
    ``key=value`` overrides; given ``run_dir``, its run paths are moved there (a resumed run in a
    moved folder, an evaluation writing its own) and ``ckpt_path`` (or ``onnx_path``) set. The task
    has the net's weights loaded from the whole file (or runs the exported file), in eval mode;
    ``with_task=False`` (resume, which builds its own) returns ``(config, None)``. Used by src.train
    (resume), src.eval, src.predict and src.export."""
    exported = str(path).endswith(".onnx")
    cfg = exported_run_config(path, overrides) if exported else read_run_config(path, overrides)
    if run_dir is not None:
        config = OmegaConf.to_container(cfg)
        config = moved_under(config, str(config["paths"]["output_dir"]), str(run_dir))
        config["paths"]["output_dir"] = str(run_dir)
        config["ckpt_path"], config["onnx_path"] = (None, str(path)) if exported else (str(path), None)
        cfg = OmegaConf.create(config)
    return cfg, trained_task(cfg, path) if with_task else None


def trained_task(cfg: DictConfig, path: str | Path):
    """The task of a loaded run's config with the checkpoint's net weights (the whole file read),
    or running the exported model.onnx, in eval mode."""
    if str(path).endswith(".onnx"):
        from src.exported import ExportedNet, model_card

        card = model_card(path)
        net = ExportedNet(path, int(card["input"]["channels"]), len(card["classes"]), int(card["input"]["size_multiple"]))
        return build_task(cfg, net).eval()
    task = build_task(cfg)
    load_net_weights(task.net, path)
    return task.eval()


def load_mask_model(ckpt_path: str | Path, overrides: Sequence[str] = ()):
    """``load_run`` for the commands that make masks (predict, export): a classifier is refused."""
    cfg, task = load_run(ckpt_path, overrides)
    if not task.makes_masks:
        raise ValueError(f"ckpt_path={ckpt_path}: a {type(task).__name__}; only segmentation models make masks")
    return cfg, task


def checkpoint_on_command_line(argv: Sequence[str]) -> str | None:
    """The first checkpoint named by ``ckpt_path=`` (in a sweep over several, the first)."""
    given = next((value for key, value in map(split_override, argv) if key == "ckpt_path" and value), None)
    return given.split(",")[0] if given else None


def register_checkpoint_config(argv: Sequence[str], program: str) -> None:
    """Before Hydra composes conf/eval.yaml or conf/predict.yaml: store the config of the checkpoint
    named on the command line as ``checkpoint_config``, the first entry of their defaults, so that
    Hydra checks each override against the training run's keys. A config-group choice (model=...,
    data=...) is refused: the weights belong to it. A checkpoint that cannot be read stores nothing:
    the command then refuses it in one line, with its status file and log."""
    from hydra.core.config_store import ConfigStore

    given = checkpoint_on_command_line(argv)
    exported = next((value for key, value in map(split_override, argv) if key == "onnx_path" and value), None)
    try:
        stored = OmegaConf.to_container(read_run_config(given) if given else exported_run_config(exported)) if given or exported else {}
    except (OSError, ValueError):
        stored = {}
    choices = [arg for arg in argv if isinstance(stored.get(split_override(arg)[0].lstrip("+~")), dict) and split_override(arg)[1] is not None]
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
    given = checkpoint_on_command_line(argv)
    if not given:
        return list(argv)
    try:
        stored = read_run_config(given)
    except (OSError, ValueError):  # a missing or foreign checkpoint: src.train names it in one line
        return list(argv)
    rewritten = []
    for arg in argv:
        key, value = split_override(arg)
        own = key.startswith(("+", "~", "-", "hydra.", "hydra/")) or key == "ckpt_path" or "." not in key
        if value is not None and not own and OmegaConf.select(stored, key, default=_MISSING) is not _MISSING:
            arg = f"++{arg}"
        rewritten.append(arg)
    return rewritten


def resume_config(ckpt_path: str | Path, overrides: Sequence[str], groups: set[str], run_dir: str) -> DictConfig:
    """The config a resumed run continues with: the checkpoint's own (not conf/'s defaults), with
    the command line's key=value overrides applied (e.g. ``trainer.max_epochs=100``) and its
    run paths moved to ``run_dir`` when the run now lives somewhere else.

    Config-group choices (``model=...``, ``data=...``) cannot change: the weights, optimizer
    state and data order belong to the checkpoint's choices. Nor can optimizer.* and scheduler.*
    keys: their saved state is restored over them.
    """
    changed = [o for o in overrides if split_override(o)[0].lstrip("+~") in groups]
    if changed:
        raise ValueError(
            f"{', '.join(changed)}: a resumed run keeps the checkpoint's config-group choices. "
            "Override single keys (e.g. trainer.max_epochs=100), or start a new run to change a choice."
        )
    restored = [o for o in overrides if split_override(o)[0].lstrip("+~").startswith(("optimizer.", "scheduler."))]
    if restored:  # Lightning loads the optimizer's and scheduler's saved state over whatever the config says
        raise ValueError(
            f"{', '.join(restored)}: a resumed run restores the optimizer and scheduler state saved in the checkpoint "
            "(learning rates included), so this would not take effect. Start a new run to train with other settings."
        )
    kept = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.", "hydra/"))]
    return load_run(ckpt_path, kept, run_dir, with_task=False)[0]
