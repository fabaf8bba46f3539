"""src.eval: a checkpoint alone reproduces its run's test metrics."""

import json

import pytest
import torch

from src.compose import load_run
from src.eval import evaluate
from src.compose import read_run_config
from tests.conftest import run_cli


def test_eval_of_the_best_checkpoint_repeats_the_training_runs_test_metrics(train_run, tmp_path):
    run_dir, metrics = train_run("debug=fast", "trainer.limit_test_batches=null")
    out = tmp_path / "eval"
    summary = evaluate(load_run(metrics["best_checkpoint"], [], out, with_task=False)[0])
    assert summary["test"].keys() == metrics["test"].keys()
    for name, value in metrics["test"].items():
        assert summary["test"][name] == pytest.approx(value, abs=5e-5), name  # equal to 4 decimals
    assert json.loads((out / "metrics.json").read_text())["test"] == summary["test"]
    for written in ("config.yaml", "images/test_masks.png", "images/confusion_matrix.png", "images/per_class.csv",
                    "images/per_image.csv", "images/worst_test.png"):
        assert (out / written).is_file(), written


def test_eval_command_writes_into_hydra_run_dir_with_its_log_and_refuses_unknown_keys(trained_run, tmp_path):
    _, metrics = trained_run
    ckpt = f"ckpt_path={metrics['best_checkpoint']}"
    result = run_cli("src.eval", ckpt, f"hydra.run.dir={tmp_path / 'x'}", "data.batch_size=4", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "callbacks used to create the checkpoint" not in result.stderr  # the weights are loaded once, by seglab
    assert json.loads((tmp_path / "x" / "metrics.json").read_text())["test"]["test/dice"] >= 0
    assert "batch_size: 4" in (tmp_path / "x" / "config.yaml").read_text()
    log = (tmp_path / "x" / "eval.log").read_text()
    assert "test split, per class" in log and f"Run directory: {tmp_path / 'x'}" in log and "Test: dice=" in log
    assert not (tmp_path / "outputs").exists()

    unknown = run_cli("src.eval", ckpt, "data.no_such_key=1", f"hydra.run.dir={tmp_path / 'y'}", cwd=tmp_path)
    assert unknown.returncode == 1 and "no_such_key" in unknown.stderr and "Traceback" not in unknown.stderr


def test_eval_overrides_keys_of_the_stored_config_and_names_unknown_ones(trained_run, tmp_path):
    _, metrics = trained_run
    cfg = read_run_config(metrics["best_checkpoint"], ["data.batch_size=3"])
    assert cfg.data.batch_size == 3 and cfg.model.base_width == 4
    with pytest.raises(KeyError, match="data.no_such_key: not a key of the checkpoint's config"):
        read_run_config(metrics["best_checkpoint"], ["data.no_such_key=1"])


def test_eval_refuses_a_checkpoint_without_a_config(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="only checkpoints written by src.train carry their config"):
        read_run_config(path)
    torch.save({"state_dict": {}, "seglab_config": {"model": {}}}, path)  # before the encoder/decoder nets
    with pytest.raises(ValueError, match="format 1, this is format 2: the nets' layer names changed"):
        read_run_config(path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        read_run_config(tmp_path / "missing.ckpt")
