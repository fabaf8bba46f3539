"""Results on real data: run seglab's recipes on ../shared/ and write the README's table.

    python bench/zoo.py                                   # every recipe (hours on 2 CPU cores)
    python bench/zoo.py --recipes camvid_lite0_fpn,camvid_lite0_fpn_scratch
    python bench/zoo.py --quick                           # two recipes, a few steps each (a test runs it)
    python bench/zoo.py --record camvid_lite0_fpn=outputs/2026-12-01/23-14-27   # a run of the recipe's command made by hand

Each recipe is one `python -m src.train experiment=...` command line, run as a user would; the
table gives its test score with a 95 % bootstrap interval over the test images (from the run's
images/per_image.csv; for top-1 accuracy, resampled 0/1 outcomes), epochs, wall time, training
images/s (training epochs only) and the command. Results accumulate in bench/zoo_results.json
(one entry per recipe and machine), so recipes can be run one at a time; the README section
between the zoo markers is rewritten from all of them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.utils.bootstrap import interval, read_per_image, score_interval  # noqa: E402
from src.utils.hardware import device_description  # noqa: E402

SHARED = Path("../shared")  # relative to the repository root, as the commands are shown
BEGIN, END = "<!-- zoo:begin -->", "<!-- zoo:end -->"
QUICK = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=2",
         "data.batch_size=2", "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false"]  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    experiment: str
    dataset: str
    model: str
    pretrained: str
    metric: str  # the key in metrics.json's test scores
    overrides: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return ["python", "-m", "src.train", f"experiment={self.experiment}", f"paths.data_dir={SHARED / 'data'}",
                f"paths.weights_dir={SHARED / 'weights'}", *self.overrides]  # fmt: skip


PETS = (f"data.root={SHARED / 'data' / 'pets'}",)
# The pets nets from scratch at the Lite0 recipe's budget of 15 epochs (their own recipes, which
# reproduce the source reports, allow 60 with early stopping: hours on two CPU cores).
PETS_SCRATCH = PETS + ("trainer.max_epochs=15",)
CIFAR_BATCHES = (f"data.root={SHARED / 'data' / 'cifar10' / 'cifar-10-batches-py'}",)
RECIPES = [
    Recipe("camvid_lite0_fpn", "CamVid (33 test pairs)", "FPN-64 on EfficientNet-Lite0", "ImageNet (file)", "test/miou"),
    Recipe("camvid_lite0_fpn_scratch", "CamVid (33 test pairs)", "FPN-64 on EfficientNet-Lite0", "none", "test/miou"),
    Recipe("camvid_unet", "CamVid (33 test pairs)", "unet (width 16)", "none", "test/miou"),
    Recipe("camvid_fcn8s", "CamVid (33 test pairs)", "fcn8s", "none", "test/miou"),
    Recipe("pets_lite0_fpn", "Pets (102 test photos)", "FPN-64 on EfficientNet-Lite0", "ImageNet (file)", "test/dice_per_image", PETS),
    Recipe("pets_resnet34_unet", "Pets (102 test photos)", "resnet34_unet", "none", "test/dice_per_image", PETS_SCRATCH + ("model.pretrained=null",)),
    Recipe("pets_unet", "Pets (102 test photos)", "unet (width 16)", "none", "test/dice_per_image", PETS_SCRATCH),
    Recipe("colour_pool", "CIFAR-10 horses (colour)", "pool_upsample_net", "none", "test/acc", CIFAR_BATCHES),
    Recipe("colour_transpose", "CIFAR-10 horses (colour)", "conv_transpose_net", "none", "test/acc", CIFAR_BATCHES),
    Recipe("colour_unet", "CIFAR-10 horses (colour)", "colour_unet", "none", "test/acc", CIFAR_BATCHES),
    Recipe("cifar10_classify_lite0", "CIFAR-10 (1,000 test images)", "EfficientNet-Lite0 classifier", "ImageNet (file)", "test/acc"),
    Recipe("cifar10_classify_resnet50", "CIFAR-10 (1,000 test images)", "resnet50_classifier", "none", "test/acc"),
]
QUICK_RECIPES = ("camvid_lite0_fpn", "pets_lite0_fpn")


def test_interval(run_dir: Path, recipe: Recipe, score: float, test_images: int | None) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of the run's headline score over its test images."""
    per_image = run_dir / "images" / "per_image.csv"
    if per_image.is_file():
        results = read_per_image(per_image)
        metric = "miou" if recipe.metric.endswith("miou") else "dice" if "dice" in recipe.metric else "acc"
        return score_interval(results, metric)[1:]
    if recipe.metric == "test/acc" and test_images:  # classification: resampling n 0/1 outcomes with this mean
        draws = np.random.default_rng(0).binomial(test_images, score, size=2000) / test_images
        return interval(draws)
    return None


def run_recipe(recipe: Recipe, work: Path, quick: bool) -> dict:
    run_dir = work / recipe.experiment
    command = recipe.command() + (QUICK if quick else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *command[1:], f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{recipe.experiment} failed (exit {result.returncode}); its log: {run_dir / 'train.log'}\n{result.stderr[-2000:]}")
    return result_row(recipe, run_dir, command, wall, quick)


def recorded_run(recipe: Recipe, run_dir: Path) -> dict:
    """A finished run of exactly the recipe's command (its .hydra/overrides.yaml says so), e.g.
    one started by hand in another terminal; its wall time is the run's own (metrics.json)."""
    import yaml

    overrides = [o for o in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) if not o.startswith("hydra.")]
    if overrides != recipe.command()[3:]:
        raise SystemExit(f"{run_dir} ran {overrides}, not the recipe {recipe.command()[3:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    per_image = run_dir / "images" / "per_image.csv"
    if recipe.metric.endswith("miou") and per_image.is_file() and "inter_" not in per_image.read_text().splitlines()[0]:
        # Written before per_image.csv held pixel counts: src.eval of the same best checkpoint
        # writes them (eval repeats the training run's test metrics).
        evaluated = run_dir / "zoo_eval"
        subprocess.run([sys.executable, "-m", "src.eval", f"ckpt_path={metrics['best_checkpoint']}", f"hydra.run.dir={evaluated}"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        per_image.write_text((evaluated / "images" / "per_image.csv").read_text())
    return result_row(recipe, run_dir, recipe.command(), metrics["wall_time_s"], False)


def result_row(recipe: Recipe, run_dir: Path, command: list[str], wall: float, quick: bool) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    score = metrics["test"][recipe.metric]
    config = (run_dir / "config.yaml").read_text()
    test_images = None
    if recipe.metric == "test/acc" and "image_folder" in config:
        test_images = sum(1 for p in (ROOT / SHARED / "data" / "cifar10" / "images" / "test").rglob("*.jpg"))
    bounds = test_interval(run_dir, recipe, score, test_images)
    return {
        "experiment": recipe.experiment, "dataset": recipe.dataset, "model": recipe.model, "pretrained": recipe.pretrained,
        "metric": recipe.metric, "score": round(score, 4), "low": round(bounds[0], 4) if bounds else None,
        "high": round(bounds[1], 4) if bounds else None, "epochs": metrics["epochs_completed"], "wall_min": round(wall / 60, 1),
        "train_images_per_s": metrics.get("train_images_per_s"), "command": " ".join(command),
        "machine": device_description(), "date": datetime.date.today().isoformat(), "quick": quick,
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| dataset | model | pretrained | epochs | test score (95 % interval) | wall time | train images/s | machine | date |",
             "|---|---|---|---:|---|---:|---:|---|---|"]  # fmt: skip
    for r in rows:
        bounds = f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] is not None else ""
        lines.append(f"| {r['dataset']} | {r['model']} | {r['pretrained']} | {r['epochs']} | {r['metric'].removeprefix('test/')} "
                     f"{r['score']:.3f}{bounds} | {r['wall_min']:.1f} min | {r['train_images_per_s'] or '—'} | {r['machine']} | {r['date']} |")  # fmt: skip
    lines += ["", "Commands (from the repository root):", ""]
    lines += [f"- `{command}`" for command in dict.fromkeys(r["command"] for r in rows)]  # a recipe run on two machines: once
    return "\n".join(lines)


def write_section(readme: Path, rows: list[dict]) -> None:
    text = readme.read_text() if readme.is_file() else ""
    section = f"{BEGIN}\n{table(rows)}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Results on real data\n\n" + section + "\n"
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=None, help="comma-separated experiment names (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK_RECIPES)} for a few steps (checks the bench itself)")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "zoo", help="where the runs go")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "zoo_results.json")
    parser.add_argument("--record", action="append", default=[], metavar="RECIPE=RUN_DIR",
                        help="add a finished run of a recipe's exact command instead of running it")  # fmt: skip
    args = parser.parse_args(argv)
    chosen = QUICK_RECIPES if args.quick else (args.recipes.split(",") if args.recipes else [r.experiment for r in RECIPES])
    known = {r.experiment: r for r in RECIPES}
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {sorted(known)}")
    stored = json.loads(args.results.read_text()) if args.results.is_file() else []
    recorded = dict(item.split("=", 1) for item in args.record)
    if recorded:
        chosen = list(recorded)
    for name in chosen:
        if name not in known:
            parser.error(f"unknown recipe {name}; choose from {sorted(known)}")
        row = recorded_run(known[name], Path(recorded[name])) if name in recorded else run_recipe(known[name], args.work, args.quick)
        print(json.dumps(row), flush=True)
        stored = [r for r in stored if (r["experiment"], r["machine"]) != (row["experiment"], row["machine"])] + [row]
    order = [r.experiment for r in RECIPES]
    stored.sort(key=lambda r: (order.index(r["experiment"]) if r["experiment"] in order else len(order), r["machine"]))
    args.results.write_text(json.dumps(stored, indent=1) + "\n")
    write_section(args.readme, stored)
    print(table(stored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
