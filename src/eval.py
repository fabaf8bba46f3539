"""Evaluate a checkpoint on the test split of the data it was trained on.

    python -m src.eval ckpt_path=outputs/.../checkpoints/best.ckpt [key=value ...] [hydra.run.dir=DIR]

The checkpoint carries its run's resolved config, so nothing else is needed; any key of it may
be overridden (e.g. data.root=/elsewhere/pets, data.batch_size=8). Prints the test metrics and
the per-class table and writes config.yaml, metrics.json, eval.log, images/test_masks.png and
the confusion matrix into its own run directory (default outputs/eval/<date>/<time>).
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.callbacks.confusion import ConfusionMatrixReport
from src.callbacks.embedding import EmbeddingPlot
from src.callbacks.worst_cases import WorstCases
from src.callbacks.mask_images import evenly_spaced_batch, prediction_grid
from src.callbacks.progress import ProgressBar
from src.compose import load_run, register_checkpoint_config, trained_task
from src.utils.log import get_logger
from src.utils.run import command_line, entry_point, headline, write_json, write_resolved_config
from src.utils.atomic import save_image

log = get_logger(__name__)


def evaluation_config(cfg: DictConfig) -> DictConfig:
    """The checkpoint's stored config with the command line's ``key=value`` overrides, writing into
    this evaluation's run directory."""
    hydra_config = HydraConfig.get()
    overrides = [o for o in hydra_config.overrides.task if not o.startswith(("ckpt_path=", "onnx_path="))]
    if bool(cfg.get("ckpt_path")) == bool(cfg.get("onnx_path")):
        raise ValueError("give ckpt_path=<checkpoint> or onnx_path=<exported model.onnx> (fp32 or int8), one of them")
    return load_run(cfg.ckpt_path or cfg.onnx_path, overrides, hydra_config.runtime.output_dir, with_task=False)[0]


def write_test_masks(task, datamodule, path: Path, count: int = 8) -> None:
    """image | truth | prediction for evenly spaced test images (segmentation tasks only)."""
    grid = prediction_grid(task, evenly_spaced_batch(datamodule.datasets["test"], count, datamodule), datamodule)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    write_resolved_config(cfg, run_dir)
    L.seed_everything(cfg.seed, workers=True)  # the same splits and order as the training run's test
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model = cfg.get("onnx_path") or cfg.ckpt_path
    task = trained_task(cfg, model)  # the whole file read now: damage or a changed net named in one line
    images = str(run_dir / "images")
    # The training run's trainer settings (precision, devices, limit_test_batches), minus fitting's.
    trainer_cfg = {key: value for key, value in cfg.trainer.items() if not key.startswith(("limit_train", "limit_val", "max_"))}
    callbacks = [ConfusionMatrixReport(images), EmbeddingPlot(images), WorstCases(images)]
    if trainer_cfg.get("enable_progress_bar", True):
        callbacks.append(ProgressBar())  # train's bar: one 80-column line
    trainer = hydra.utils.instantiate(
        trainer_cfg,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
    )
    trainer.test(task, datamodule=datamodule)  # the weights are in: trained_task read them (Lightning would again)
    test_metrics = {name: float(value) for name, value in sorted(trainer.callback_metrics.items())}
    summary = {"checkpoint" if cfg.ckpt_path else "exported_model": str(model), "wall_time_s": round(time.perf_counter() - started, 2), "test": test_metrics}
    write_json(run_dir / "metrics.json", summary)  # the finished scores first: a picture that fails loses none of them
    log.info(headline(test_metrics))
    if task.makes_masks:
        write_test_masks(task, datamodule, run_dir / "images" / "test_masks.png")
    log.info(f"Run directory: {run_dir}")
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@entry_point("python -m src.eval", prepare=evaluation_config)
def main(cfg: DictConfig) -> dict:
    return evaluate(cfg)


if __name__ == "__main__":
    command_line(main, lambda argv: register_checkpoint_config(argv, "src.eval"))
