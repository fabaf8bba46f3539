"""src.eval: a checkpoint alone reproduces its run's test metrics."""

import json

import pytest
import torch

from src.eval import main as eval_main
from src.utils.checkpoint import read_run_config


def test_eval_of_the_best_checkpoint_repeats_the_training_runs_test_metrics(train_run, tmp_path):
    run_dir, metrics = train_run("debug=fast", "trainer.limit_test_batches=null")
    out = tmp_path / "eval"
    summary = eval_main([f"ckpt_path={metrics['best_checkpoint']}", f"output_dir={out}"])
    assert summary["test"].keys() == metrics["test"].keys()
    for name, value in metrics["test"].items():
        assert summary["test"][name] == pytest.approx(value, abs=5e-5), name  # equal to 4 decimals
    assert json.loads((out / "metrics.json").read_text())["test"] == summary["test"]
    for written in ("config.yaml", "images/test_masks.png", "images/confusion_matrix.png", "images/per_class.csv"):
        assert (out / written).is_file(), written


def test_eval_overrides_keys_of_the_stored_config_and_names_unknown_ones(train_run, tmp_path):
    _, metrics = train_run("debug=fast")
    cfg = read_run_config(metrics["best_checkpoint"], ["data.batch_size=3"])
    assert cfg.data.batch_size == 3 and cfg.model.base_width == 4
    with pytest.raises(KeyError, match="data.no_such_key: not a key of the checkpoint's config"):
        read_run_config(metrics["best_checkpoint"], ["data.no_such_key=1"])


def test_eval_refuses_a_checkpoint_without_a_config(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="only checkpoints written by src.train carry their config"):
        read_run_config(path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        read_run_config(tmp_path / "missing.ckpt")
