"""Every choice of the config groups a user picks from the command line runs with debug=fast
(issue 22: logger=none, a listed choice, crashed). Models and datasets have their own tests
(test_models, test_data, test_experiments); here the groups that combine with any of them."""

import json

import pytest
import torch

from tests.conftest import CONF_DIR, compose_config, run_cli, tiny

GROUPS = ("logger", "callbacks", "loss", "optimizer", "scheduler", "aug", "debug", "trainer")
NEEDS_A_GPU = {("trainer", "gpu")}
IN_A_SUBPROCESS = {("trainer", "ddp")}  # Lightning's DDP launcher re-runs the command line
CHOICES = [(group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))]


def test_the_groups_enumerated_here_are_every_standalone_group():
    assert {path.name for path in CONF_DIR.iterdir() if path.is_dir()} - set(GROUPS) == {
        "data", "model", "task", "experiment", "hparams_search", "hydra", "paths"}  # fmt: skip


@pytest.mark.parametrize("group,choice", [c if c == ("logger", "none") else pytest.param(*c, marks=pytest.mark.slow) for c in CHOICES])
def test_every_choice_runs_debug_fast(tmp_path, group, choice):
    overrides = [f"{group}={choice}", "debug=fast" if group != "debug" else "trainer.max_epochs=1", f"paths.tracking_dir={tmp_path}",
                 "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=2", "++trainer.limit_test_batches=2"]  # fmt: skip
    if group == "debug" and choice != "fast":
        overrides += ["data.num_workers=0"]
    if group == "loss" and choice == "bce":
        overrides += ["model.num_classes=1"]
    run = tiny(overrides)
    if group == "callbacks" and choice == "none":
        run.remove("callbacks.progress_bar=null")  # no callbacks: nothing to switch off
    if (group, choice) in NEEDS_A_GPU and not torch.cuda.is_available():
        result = run_cli("src.train", *run, "hydra.run.dir=run", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "(trainer=gpu), but no GPU is visible to PyTorch here" in result.stderr, result.stderr[-2000:]
        return
    if (group, choice) in IN_A_SUBPROCESS:
        result = run_cli("src.train", *run, "trainer.accelerator=cpu", "hydra.run.dir=run", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        from src.train import train

        train(compose_config("train", run, tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_completed"] >= 1 and metrics["test"]
