"""Squashed squares against aspect-kept crops, both scored at each test image's own resolution.

    python bench/resolution.py [--root ../shared/data/pets] [--epochs 8] [--size 128] [--batch 8]

Trains resnet34_unet on Oxford-IIIT Pet twice with the same epochs, batch and seed:
A: data.resize=square (every photo squashed to size x size, as the source report did);
B: data.resize=short_side data.crop_size=size (shorter side = size, aspect kept, random crops).
Both test at data.eval_resolution=original. Prints test Dice, per-image Dice, mIoU and wall time
of each, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import src.utils.resolvers  # noqa: E402,F401  (the resolvers conf/ uses)
from src.train import train  # noqa: E402
from src.utils.log import configure_console_logging  # noqa: E402

SETTINGS = {
    "square": ["data.resize=square"],
    "short_side+crop": ["data.resize=short_side", "data.crop_size={size}"],
}


def run(name: str, args, work: Path, setting: list[str] | None = None, model: str = "model=resnet34_unet") -> dict:
    """Train and test one setting on pets; test scores and wall time."""
    overrides = [
        model, "data=pets", f"data.root={args.root}", f"data.cache_dir={work / 'cache'}",
        f"data.image_size={args.size}", f"data.batch_size={args.batch}", f"trainer.max_epochs={args.epochs}",
        "data.eval_resolution=original", "callbacks.early_stopping=null", "callbacks.progress_bar=null",
        "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "callbacks.lr_monitor=null", "logger=none", "seed=0",
        *[o.format(size=args.size) for o in (SETTINGS[name] if setting is None else setting)],
    ]  # fmt: skip
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(work / name.replace("+", "_"))
    started = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - started
    test = json.loads((work / name.replace("+", "_") / "metrics.json").read_text())["test"]
    return {"test_dice": test["test/dice"], "test_dice_per_image": test["test/dice_per_image"],
            "test_miou": test["test/miou"], "wall_s": round(wall, 1)}  # fmt: skip


def report(benchmark: str, first_column: str, results: dict[str, dict], args) -> None:
    """The runs' test scores and wall times as a table, then one JSON line."""
    print(f"pets at {args.root}, {args.epochs} epochs, batch {args.batch}, {args.size} px; scored at the original resolution")
    print(f"| {first_column} | test Dice | test Dice per image | test mIoU | wall time (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['test_dice']:.4f} | {r['test_dice_per_image']:.4f} | {r['test_miou']:.4f} | {r['wall_s']:.0f} |")
    print(json.dumps({"benchmark": benchmark, "epochs": args.epochs, "size": args.size, "batch": args.batch, "results": results}))


def pets_arguments(description: str) -> argparse.Namespace:
    """The command line of a pets benchmark (data folder, epochs, size, batch); logging set up so
    that the runs' own lines (precision, test scores) show."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "pets"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    configure_console_logging()
    return parser.parse_args()


def main() -> None:
    args = pets_arguments(__doc__)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in SETTINGS:
            results[name] = run(name, args, Path(folder))
    report("resolution", "training data", results, args)


if __name__ == "__main__":
    main()
