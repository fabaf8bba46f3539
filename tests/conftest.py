"""Shared test helpers: compose the real configs with tiny sizes and run the real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tiny shapes, no progress output: a few seconds an epoch on two CPU cores.
TINY = [
    "data.image_size=32",
    "data.batch_size=8",
    "callbacks.progress_bar=null",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]
# Few shapes and a narrow U-Net, for runs that keep the default data and model.
TINY_SHAPES = ["data.num_train=32", "data.num_val=16", "data.num_test=16"]
TINY_UNET = ["model.base_width=4", "model.depth=3"]


def tiny(overrides) -> list[str]:
    """TINY, plus few shapes and the narrow U-Net unless the overrides pick other data or model."""
    picks = lambda group: any(o.startswith(f"{group}=") for o in overrides)  # noqa: E731
    return TINY + ([] if picks("data") else TINY_SHAPES) + ([] if picks("model") else TINY_UNET) + list(overrides)


def compose_config(config_name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # stands in for Hydra's run directory
    return cfg


@pytest.fixture
def train_run(tmp_path):
    """Run src.train on tiny data in-process; returns (run_dir, metrics.json as dict)."""
    from src.train import train

    def run(*overrides: str, run_dir: Path | None = None):
        run_dir = run_dir or tmp_path / "run"
        cfg = compose_config("train", tiny(overrides), run_dir)
        train(cfg)
        return run_dir, json.loads((run_dir / "metrics.json").read_text())

    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One debug=fast training run of the default data and narrow U-Net, shared by every test that
    only reads its checkpoint (eval, predict, export, hostile inputs): (run_dir, metrics.json).
    Tests must not change its files; copy them to tmp_path first."""
    from src.train import train

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(compose_config("train", tiny(["debug=fast"]), run_dir))
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m <args>` from `cwd` with the project importable, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
