"""Hostile inputs, round three (issue 22): each item reproduced, then refused by name or handled."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_cli, tiny


def test_a_resume_from_a_copied_run_folder_keeps_the_best_checkpoint_of_the_best_epoch(tmp_path):
    common = tiny(["test=false", "callbacks.mask_images=null", "callbacks.early_stopping=null", "data.num_train=96",
                   "model.base_width=8"])  # fmt: skip
    first = run_cli("src.train", *common, "trainer.max_epochs=2", "hydra.run.dir=first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(tmp_path / "first", tmp_path / "copied")
    shutil.rmtree(tmp_path / "first")  # moved, not copied: Lightning's dirpath check fails either way
    # Stand-in for a better first epoch: the recorded best score is raised to 0.99 in last.ckpt, so
    # every epoch of the resumed run is worse than the best one (deterministically).
    last_path = tmp_path / "copied" / "checkpoints" / "last.ckpt"
    last = torch.load(last_path, weights_only=False)
    (key,) = [k for k, state in last["callbacks"].items() if state.get("monitor") == "val/dice"]
    state = last["callbacks"][key]
    state["best_model_score"] = state["kth_value"] = torch.tensor(0.99)
    state["best_k_models"] = {path: torch.tensor(0.99) for path in state["best_k_models"]}
    last_path.unlink()  # may be a hard link to best.ckpt (src.utils.checkpoint.AtomicCheckpointIO)
    torch.save(last, last_path)
    best_bytes = (tmp_path / "copied" / "checkpoints" / "best.ckpt").read_bytes()
    best_epoch = torch.load(tmp_path / "copied" / "checkpoints" / "best.ckpt", weights_only=False)["epoch"]

    resumed = run_cli("src.train", "ckpt_path=copied/checkpoints/last.ckpt", "trainer.max_epochs=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = torch.load(last_path, weights_only=False)
    assert after["epoch"] == 2  # a third epoch ran (and, scoring below 0.99, was not the best)
    assert (tmp_path / "copied" / "checkpoints" / "best.ckpt").read_bytes() == best_bytes  # not replaced by a worse epoch
    metrics = json.loads((tmp_path / "copied" / "metrics.json").read_text())
    assert metrics["best_score"] == pytest.approx(0.99) and metrics["best_epoch"] == best_epoch
    assert "best val/dice" in resumed.stdout + resumed.stderr and "kept" in resumed.stdout + resumed.stderr
