"""Verify a dataset folder without training.

    python -m src.data.check data=pets data.root=/path/to/oxford-iiit-pet

Counts per split, images without masks and the reverse, size mismatches, unknown mask values
or colours, unreadable files, items shared between splits; prints class pixel frequencies and
writes a PNG grid of training samples with their masks overlaid. Exits 1 when it finds a problem.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from rich.table import Table

from src.data.datamodule import SegmentationDataModule
from src.data.files import DatasetError, resize_pair
from src.data.from_files import FileSegmentationDataModule
from src.data.masks import invalid_mask_values
from src.data.splits import SPLITS
from src.data.palettes import overlay
import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.utils.log import get_logger, plain_text
from src.utils.run import command_line, entry_point, write_json
from src.utils.atomic import save_image
from src.validate import check_config

log = get_logger(__name__)

GRID_CELL = 128


def _split_items(dm: SegmentationDataModule, split: str, problems: list[str]):
    """(name, image, mask) of every readable item of a split; problems are collected, not raised."""
    if isinstance(dm, FileSegmentationDataModule):
        for sample in dm.list_split(split):
            try:
                image, mask = dm.read_sample(sample)
            except DatasetError as error:
                problems.append(str(error))
                continue
            yield sample.name, image, mask
    else:
        arrays = dm.load_split(split)
        for name, image, mask in zip(arrays.names, arrays.images, arrays.masks):
            bad = invalid_mask_values(mask, dm.num_classes, dm.ignore_index)
            if bad:
                problems.append(f"{name}: mask values {bad} outside 0..{dm.num_classes - 1} and {dm.ignore_index}")
                continue
            yield name, image, mask


def check(dm: SegmentationDataModule, grid_samples: int = 16) -> dict:
    """Read every item of every split; returns counts, pixel frequencies, problems and grid cells."""
    problems: list[str] = []
    counts: dict[str, int] = {}
    names: dict[str, set[str]] = {}
    pixels = np.zeros(256, dtype=np.int64)
    cells: list[np.ndarray] = []
    dm.prepare_data()
    root = getattr(dm, "root", None)
    if root is not None and not Path(root).is_dir():  # one line, not the same problem for every split
        raise FileNotFoundError(f"data.root={root}: no such folder; set data.root to the dataset's folder")
    for split in SPLITS:
        names[split] = set()
        try:
            for name, image, mask in _split_items(dm, split, problems):
                names[split].add(name)
                pixels += np.bincount(mask.ravel(), minlength=256)
                if split == "train" and len(cells) < grid_samples:
                    small_image, small_mask = resize_pair(image, mask, GRID_CELL)
                    cells.append(overlay(small_image, small_mask, dm.palette, ignore_index=dm.ignore_index))
        except (DatasetError, ValueError, OSError) as error:
            problems.append(f"{split} split: {error}")
        counts[split] = len(names[split])
        if not names[split] and not any(problem.startswith(f"{split} split") for problem in problems):
            problems.append(f"{split} split: no items; check the split lists (or fractions) under data.root")
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            shared = names[first] & names[second]
            if shared:
                problems.append(f"{len(shared)} items in both {first} and {second}, e.g. {sorted(shared)[:3]}")
    if isinstance(dm, FileSegmentationDataModule) and dm.root.is_dir():
        problems += dm.unpaired_files()
    counted = pixels[: dm.num_classes].sum()
    frequencies = {
        dm.class_names[k]: float(pixels[k] / counted) if counted else 0.0 for k in range(dm.num_classes)
    }
    return {
        "counts": counts,
        "class_pixel_frequency": frequencies,
        "ignored_pixels": int(pixels[dm.ignore_index]),
        "problems": problems,
        "cells": cells,
    }


def sample_grid(cells: list[np.ndarray], columns: int = 4) -> np.ndarray:
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    blank = np.full_like(cells[0], 255)
    return np.concatenate([np.concatenate(row + [blank] * (columns - len(row)), axis=1) for row in rows], axis=0)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="check")
@entry_point("python -m src.data.check")
def main(cfg: DictConfig) -> None:
    check_config(cfg)  # the data keys train checks (sizes, counts), said before anything is read
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    report = check(dm, cfg.grid_samples)
    run_dir = Path(cfg.paths.output_dir)

    table = Table(title=f"{cfg.data._target_.rsplit('.', 1)[-1]} at {getattr(dm, 'root', '(generated)')}")
    table.add_column("split")
    table.add_column("items", justify="right")
    for split, count in report["counts"].items():
        table.add_row(split, str(count))
    log.info(plain_text(table))
    frequency = Table(title="class pixel frequency")
    frequency.add_column("class")
    frequency.add_column("share of pixels", justify="right")
    for name, share in report["class_pixel_frequency"].items():
        frequency.add_row(name, f"{100 * share:.2f} %")
    log.info(plain_text(frequency))
    log.info(f"ignored pixels ({dm.ignore_index}): {report['ignored_pixels']:,}")

    if report["cells"]:
        grid_path = run_dir / "samples.png"
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        save_image(sample_grid(report["cells"]), grid_path)
        log.info(f"samples with their masks overlaid: {grid_path}")
    write_json(run_dir / "data_check.json", {k: v for k, v in report.items() if k != "cells"})

    problems = report["problems"]
    if problems:
        log.error(f"{len(problems)} problem(s):\n" + "\n".join(f"  - {problem}" for problem in problems))
        raise ValueError(f"data at {getattr(dm, 'root', '(generated)')}: {len(problems)} problem(s), listed above")
    log.info("no problems found")


if __name__ == "__main__":
    command_line(main)
