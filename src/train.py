"""Train a model: `python -m src.train [group=choice ...] [key=value ...]` (see conf/train.yaml).

Fits on the train split, validates every epoch, tests the best checkpoint, and writes the
resolved config, checkpoints, TensorBoard events and metrics.json into the run directory.
Returns the best monitored value so that Hydra sweepers can optimise it.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.callbacks.seeding import EpochSeeding
from src.callbacks.speed import TrainingSpeed
from src.data.class_weights import class_weights
from src.compose import (
    build_net,
    build_task,
    encoder_normalisation,
    instantiate_group,
    load_net_weights,
    resume_command_line,
    resume_config,
)
from src.models.summary import parameter_counts
from src.utils.checkpoint import ConfigInCheckpoint, check_room_for_checkpoints, checkpoint_position
from src.utils.hardware import auto_precision
from src.utils.log import get_logger
from src.utils.run import command_line, entry_point, flatten, headline, write_json, write_resolved_config
from src.validate import check_config

log = get_logger(__name__)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in sorted(metrics.items())}


def _explain_interruption(trainer: L.Trainer, interruption: BaseException) -> int:
    """Say what was kept and the command that resumes; the exit status (128 + signal number)."""
    by_sigterm = isinstance(interruption, SIGTERMException)
    last = next((Path(cb.dirpath) / f"{cb.filename}.ckpt" for cb in trainer.checkpoint_callbacks if not cb.monitor), None)
    where = f"in epoch {trainer.current_epoch + 1} (step {trainer.global_step})"
    if last is not None and last.is_file():
        epoch = checkpoint_position(str(last))["epoch"] + 1
        log.warning(
            f"Interrupted by {'SIGTERM' if by_sigterm else 'Ctrl-C'} {where}. {last} holds the end of epoch {epoch}; "
            f"the unfinished epoch runs again on resume, so the result is the uninterrupted run's. Resume with:\n"
            f"  python -m src.train ckpt_path={last.resolve()}"
        )
    else:
        log.warning(f"Interrupted by {'SIGTERM' if by_sigterm else 'Ctrl-C'} {where}, before a first epoch ended: nothing to resume.")
    return 128 + (signal.SIGTERM if by_sigterm else signal.SIGINT)


def resolve_class_weights(cfg: DictConfig, datamodule) -> None:
    """Every ``class_weights`` of the loss given as a scheme (median_frequency, inverse_frequency)
    becomes its numbers, from the training masks (counted once, cached with the split), so the
    run's config and checkpoints hold the weights it trained with."""
    nodes = [cfg.loss] + [value for value in cfg.loss.get("losses", {}).values() if isinstance(value, DictConfig)]
    for node in nodes:
        scheme = node.get("class_weights")
        if not isinstance(scheme, str):
            continue
        if not hasattr(datamodule, "class_pixel_counts"):
            raise ValueError(f"loss.class_weights={scheme}: {type(datamodule).__name__} has no masks to count classes in")
        weights = class_weights(scheme, *datamodule.class_pixel_counts("train"))
        node.class_weights = weights
        names = getattr(datamodule, "class_names", [str(k) for k in range(len(weights))])
        log.info(f"Class weights ({scheme}, from the training masks): " + ", ".join(f"{n} {w:.4f}" for n, w in zip(names, weights)))


def continued_run(cfg: DictConfig) -> DictConfig:
    """A resume (ckpt_path=... on the command line) continues with the checkpoint's own config, not
    conf/'s defaults, with the command line's overrides."""
    if not cfg.ckpt_path or not HydraConfig.initialized():
        return cfg
    hydra_config = HydraConfig.get()
    groups = {name.split("@")[0] for name in hydra_config.runtime.choices}
    return resume_config(cfg.ckpt_path, hydra_config.overrides.task, groups, cfg.paths.output_dir)


@entry_point("python -m src.train", prepare=continued_run)
def train(cfg: DictConfig) -> float | None:
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    check_config(cfg)
    if cfg.seed is None:
        with open_dict(cfg):
            cfg.seed = random.randrange(2**31)
    L.seed_everything(cfg.seed, workers=True)
    precision, why = auto_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    with open_dict(cfg):
        cfg.trainer.precision = precision
    log.info(f"Precision: {precision} ({why})")

    # The net first: its encoder's pretrained convention decides the data's normalisation.
    net = build_net(cfg.model)
    with open_dict(cfg):
        chosen = encoder_normalisation(cfg.data, net)
    if chosen:
        log.info(chosen)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    resolve_class_weights(cfg, datamodule)
    config = OmegaConf.to_container(cfg, resolve=True)
    task = build_task(cfg, net)
    if cfg.ckpt_path:  # read whole now: a damaged file, or a net that no longer fits it, is named before anything changes
        load_net_weights(task.net, cfg.ckpt_path)
    check_room_for_checkpoints(run_dir / "checkpoints", task)
    write_resolved_config(cfg, run_dir)
    speed = TrainingSpeed()
    callbacks = instantiate_group(cfg.get("callbacks")) + [ConfigInCheckpoint(config), EpochSeeding(cfg.seed), speed]
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: LearningRateMonitor refuses to run without a logger, and has nothing to write to
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    # Lightning's summary table has a FLOPs column of zeros without an example input: one line instead.
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                 enable_model_summary=bool(cfg.trainer.get("enable_model_summary", False)))  # fmt: skip
    counts = parameter_counts(task.net.parameters())
    log.info(f"Model: {type(task.net).__name__}, {counts['parameters'] / 1e6:.2f} M parameters ({counts['trainable'] / 1e6:.2f} M trainable)")

    resumed_from = None
    if cfg.ckpt_path:
        resumed_from = {"path": str(cfg.ckpt_path), **checkpoint_position(cfg.ckpt_path)}
        waited = resumed_from.get("early_stopping_wait")
        log.info(
            f"Resuming {run_dir} from {cfg.ckpt_path}: {resumed_from['epoch'] + 1} epochs "
            f"({resumed_from['global_step']} steps) done of {cfg.trainer.max_epochs}; weights, optimizer, "
            "scheduler and data order restored"
            + (f", early stopping {waited} of {cfg.callbacks.early_stopping.patience} epochs without improvement" if waited is not None else "")
            + "."
        )
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    except (KeyboardInterrupt, SystemExit) as interruption:  # Lightning turns Ctrl-C into exit(1)
        raise SystemExit(_explain_interruption(trainer, interruption)) from None
    fit_metrics = _scalars(trainer.callback_metrics)

    checkpoints = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    checkpoint = next((cb for cb in checkpoints if cb.monitor), None)
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    if best_path and not Path(best_path).is_file():  # a resumed run whose best epoch's file was left behind
        log.warning(f"The best epoch's checkpoint {best_path} is not here; testing the weights at the end of training.")
        best_path = ""
    last_path = next((cb.best_model_path for cb in checkpoints if not cb.monitor), "")
    test_metrics: dict[str, float] = {}
    if cfg.test:
        if not best_path:
            log.info("No best checkpoint was saved; testing the weights at the end of training.")
        trainer.test(task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        test_metrics = _scalars(trainer.callback_metrics)

    best_score = None
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best_score = float(checkpoint.best_model_score)
    elif cfg.monitor in fit_metrics:
        best_score = fit_metrics[cfg.monitor]
    early_stopping = next((cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)), None)
    summary = {
        "monitor": cfg.monitor,
        "best_score": best_score,
        "best_epoch": checkpoint_position(best_path)["epoch"] if best_path else None,
        "best_checkpoint": best_path or None,
        "last_checkpoint": last_path or None,
        "epochs_completed": trainer.current_epoch,
        "global_step": trainer.global_step,
        "stopped_early": bool(early_stopping and early_stopping.stopped_epoch > 0),
        "resumed_from": resumed_from,
        "seed": cfg.seed,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "train_images_per_s": speed.images_per_s,  # this process's training epochs, validation left out
        "fit": fit_metrics,
        "test": test_metrics,
    }
    write_json(run_dir / "metrics.json", summary)
    hp_metrics = {f"hp/{name.replace('/', '_')}": value for name, value in test_metrics.items()}
    if best_score is not None:
        hp_metrics["hp/best_" + cfg.monitor.replace("/", "_")] = best_score
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # its hparams view pairs the config with these scores
            logger.log_hyperparams(flatten(config), metrics=hp_metrics)
        else:
            logger.log_hyperparams(flatten(config))
            logger.log_metrics(hp_metrics, step=trainer.global_step)
        logger.save()
        if isinstance(logger, WandbLogger):  # a sweep runs every job in one process: end this run now
            logger.experiment.finish()

    log.info(f"Run directory: {run_dir}")
    if best_score is not None:
        shown = Path(best_path).relative_to(run_dir) if best_path and Path(best_path).is_relative_to(run_dir) else best_path
        log.info(f"Best {cfg.monitor}: {best_score:.4f}" + (f"  ({shown})" if shown else ""))  # under the run directory just named
    if test_metrics:
        log.info(headline(test_metrics))
    log.info(f"Curves and masks: tensorboard --logdir {run_dir.parent if run_dir.name.isdigit() else run_dir}")
    return best_score


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    command_line(main, resume_command_line)
