"""What seglab's training entry costs over a hand-written PyTorch loop, in seconds per epoch.

    python bench/overhead.py [--model resnet34_unet] [--size 128] [--batch 8] [--train-batches 100]
                             [--val-batches 2] [--epochs 3] [--repeats 2] [key=value ...]

A: `src.train.train` on the composed config, exactly as `python -m src.train` runs it, with its
default callbacks (best and last checkpoints, early stopping, mask images, learning-rate monitor,
rich progress bar, confusion report), the TensorBoard logger and precision=auto.
B: a plain loop over the same datamodule's loaders (data=shapes, generated in memory, no
workers), the same net, memory format and precision, loss, Adam and cosine schedule, doing per
epoch: forward, loss, backward and step on every training batch with the same confusion-matrix
update; then the same validation pass (loss, confusion matrix and per-image Dice); no files.

Runs alternate A B A B; an epoch is the time from one training epoch's start to the next
(training, validation and, for A, its checkpoints and images); each run's first epoch is a
warm-up and not counted. Prints the median seconds per epoch of each, the ratio A/B, the
difference A - B (mostly a fixed cost per epoch: the checkpoints and the mask images), and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.apply_func import move_data_to_device
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.compose import build_net  # noqa: E402
from src.metrics import PerImageDice, confusion_matrix, hard_predictions, segmentation_scores  # noqa: E402
from src.train import train  # noqa: E402
from src.utils.hardware import auto_precision, device_description  # noqa: E402


class EpochClock(L.Callback):
    """Writes the time of every training epoch's start, and of the end of training, to a file."""

    def __init__(self, path: str):
        self.path, self.times = path, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.times.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.times.append(time.perf_counter())
        Path(self.path).write_text(json.dumps(self.times))


def config(args, run_dir: Path, clock: Path):
    overrides = [
        f"model={args.model}",
        f"data.image_size={args.size}",
        f"data.batch_size={args.batch}",
        f"data.num_train={args.batch * args.train_batches}",
        f"data.num_val={args.batch * args.val_batches}",
        "data.num_test=8",
        "data.num_workers=0",
        f"trainer.max_epochs={args.epochs}",
        "test=false",
        "+callbacks.epoch_clock._target_=bench.overhead.EpochClock",
        f"+callbacks.epoch_clock.path={clock}",
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        if "pretrained" in cfg.model:
            cfg.model.pretrained = None  # no downloads; the weights' values do not change the cost
    return cfg


def epoch_times(starts: list[float]) -> list[float]:
    """Seconds of each epoch after the first (warm-up), from consecutive epoch starts."""
    return [b - a for a, b in zip(starts[1:], starts[2:])]


def run_seglab(cfg, clock: Path) -> list[float]:
    train(cfg)
    return epoch_times(json.loads(clock.read_text()))


def run_plain(cfg) -> list[float]:
    L.seed_everything(cfg.seed)
    precision, _ = auto_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
    net = build_net(cfg.model).to(device, memory_format=torch.channels_last)  # as src.train builds it
    loss_fn = hydra.utils.instantiate(cfg.loss)
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=net.parameters())
    scheduler = hydra.utils.instantiate(cfg.scheduler)(optimizer)
    k = cfg.data.num_classes
    train_cm, val_cm = confusion_matrix(k).to(device), confusion_matrix(k).to(device)
    val_dice = PerImageDice(k).to(device)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")  # noqa: E731

    def batches(loader):
        for batch in loader:
            batch = datamodule.normalise_batch(move_data_to_device(batch, device))
            yield batch["image"].contiguous(memory_format=torch.channels_last), batch["mask"]

    starts = []
    for epoch in range(cfg.trainer.max_epochs):
        starts.append(time.perf_counter())
        net.train()
        for images, masks in batches(train_loader):
            with autocast():
                logits = net(images)
                loss = loss_fn(logits, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_cm.update(hard_predictions(logits.detach()), masks)
        segmentation_scores(train_cm.compute())
        train_cm.reset()
        net.eval()
        with torch.no_grad():
            for images, masks in batches(val_loader):
                with autocast():
                    logits = net(images)
                    loss_fn(logits, masks)
                predictions = hard_predictions(logits)
                val_cm.update(predictions, masks)
                val_dice.update(predictions, masks)
        segmentation_scores(val_cm.compute())
        val_dice.compute()
        val_cm.reset()
        val_dice.reset()
        scheduler.step()
    starts.append(time.perf_counter())
    return epoch_times(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet34_unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train-batches", type=int, default=100, help="800 images: a quarter of a pets epoch")
    parser.add_argument("--val-batches", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="per run, the first one a warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="A B pairs")
    parser.add_argument("overrides", nargs="*", help="more config overrides for both, e.g. trainer.precision=32-true")
    args = parser.parse_args()

    seconds = {"seglab": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            run_dir, clock = Path(tmp) / f"run{repeat}", Path(tmp) / f"clock{repeat}.json"
            cfg = config(args, run_dir, clock)
            seconds["seglab"] += run_seglab(cfg, clock)
            seconds["plain"] += run_plain(cfg)
            print(f"pair {repeat + 1}: seglab {seconds['seglab'][-args.epochs + 1:]}  plain {seconds['plain'][-args.epochs + 1:]}", flush=True)
    a, b = statistics.median(seconds["seglab"]), statistics.median(seconds["plain"])
    precision, _ = auto_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    where = device_description()
    print(f"\n{args.model} {args.size}x{args.size}, batch {args.batch}, {args.train_batches} training + {args.val_batches} "
          f"validation batches an epoch, {precision}, on {where}")  # fmt: skip
    print(f"seglab (A): {a:.3f} s/epoch   plain loop (B): {b:.3f} s/epoch   A/B = {a / b:.3f}")
    # What an epoch costs A beyond B whatever its length: checkpoints, mask images, logging.
    print(f"A - B: {a - b:.3f} s an epoch, {(a - b) / args.train_batches * 1000:.1f} ms a training batch")
    print(json.dumps({"bench": "overhead", "date": str(date.today()), "device": where, "model": args.model, "size": args.size,
                      "batch": args.batch, "train_batches": args.train_batches, "val_batches": args.val_batches,
                      "precision": precision, "seglab_s_per_epoch": round(a, 4), "plain_s_per_epoch": round(b, 4),
                      "ratio": round(a / b, 4), "epochs": seconds}))  # fmt: skip


if __name__ == "__main__":
    main()
