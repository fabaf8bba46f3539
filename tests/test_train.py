"""The training entry point end to end, on tiny shapes."""

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from src.utils.checkpoint import CONFIG_KEY
from tests.conftest import ROOT, run_cli, tiny


def test_fast_run_writes_every_file_of_a_run(train_run):
    run_dir, metrics = train_run("debug=fast")
    assert (run_dir / "config.yaml").read_text().count("${") == 0  # resolved
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "images" / "val_masks.png").is_file()
    assert 0.0 <= metrics["test"]["test/dice"] <= 1.0
    assert {"test/loss", "test/miou", "test/acc", "test/iou_shape", "test/dice_per_image"} <= metrics["test"].keys()
    with (run_dir / "images" / "per_class.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["class"] for row in rows] == ["background", "shape"]
    assert float(rows[1]["iou"]) == pytest.approx(metrics["test"]["test/iou_shape"], abs=1e-4)
    assert Image.open(run_dir / "images" / "confusion_matrix.png").size[0] > 100
    assert metrics["best_checkpoint"].endswith("best.ckpt") and metrics["epochs_completed"] == 1

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss_step", "val/loss", "val/dice", "val/miou"} <= set(tags["scalars"])
    assert {"val/masks", "test/confusion_matrix"} <= set(tags["images"])
    image = events.Images("val/masks")[-1]
    assert image.width == 3 * 32 + 2 * 2  # image | truth | prediction, with separators
    hparams = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert hparams["optimizer/lr"].number_value == pytest.approx(3e-3)
    assert hparams["model/_target_"].string_value == "src.models.unet.UNet"
    # precision=auto is resolved before the run starts: the run records what it actually used
    assert hparams["trainer/precision"].string_value in ("32-true", "bf16-mixed")
    assert OmegaConf.load(run_dir / "config.yaml").trainer.precision == hparams["trainer/precision"].string_value


def test_train_log_tells_the_same_story_as_the_console(tmp_path):
    result = run_cli("src.train", "debug=fast", *tiny([]), "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    for line in ("Precision: ", "test split, per class", "Test: dice=", f"Run directory: {tmp_path / 'run'}",
                 "Best val/dice: ", "Curves and masks: "):  # fmt: skip
        assert line in log, line
        assert line in result.stdout, line
    assert "│ shape " in log  # the per-class table's rows, as plain text
    assert "Seed set to 42" in log  # Lightning's own messages too
    # Lightning's lines naming the tested checkpoint's full path: in the log, not on the 80-column console
    assert "Restoring states from the checkpoint path at " in log and "Restoring states" not in result.stdout
    assert "Best val/dice: " in result.stdout and "  (checkpoints/best.ckpt)" in result.stdout


def test_checkpoints_load_without_pickle_and_carry_the_resolved_config(train_run):
    run_dir, _ = train_run("debug=fast", "optimizer.lr=0.002")
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    config = state[CONFIG_KEY]
    assert isinstance(config, dict)
    assert config["model"]["_target_"] == "src.models.unet.UNet" and config["model"]["base_width"] == 4
    assert config["optimizer"]["lr"] == 0.002
    assert any(key.startswith("net.") for key in state["state_dict"])


def test_early_stopping_ends_a_run_whose_val_loss_stops_improving(train_run):
    # lr=0 and no batch norm: the weights never change, so val/loss never improves after epoch 0
    # and patience 7 (callbacks/default.yaml) must stop the run after 1 + 7 epochs.
    _, metrics = train_run("optimizer.lr=0.0", "model.batch_norm=false", "trainer.max_epochs=20", "test=false")
    assert metrics["stopped_early"] is True
    assert metrics["epochs_completed"] == 8


def test_resume_from_last_checkpoint_continues_at_saved_epoch_and_step(train_run, tmp_path):
    steps_per_epoch = 4  # 32 train items / batch 8
    first_dir, first = train_run("trainer.max_epochs=2", "test=false", run_dir=tmp_path / "first")
    assert first["global_step"] == 2 * steps_per_epoch
    last = first_dir / "checkpoints" / "last.ckpt"
    _, resumed = train_run(f"ckpt_path={last}", "trainer.max_epochs=3", "test=false", run_dir=tmp_path / "second")
    assert resumed["resumed_from"]["epoch"] == 1  # the last completed epoch (counted from 0)
    assert resumed["resumed_from"]["global_step"] == 2 * steps_per_epoch
    # One more epoch, not three: training picked up where it stopped.
    assert resumed["global_step"] == 3 * steps_per_epoch
    assert resumed["epochs_completed"] == 3


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_resume_continues_in_its_run_directory_and_ends_with_the_uninterrupted_weights(tmp_path):
    """Acceptance: stopped after epoch 2 and resumed from last.ckpt = never stopped (deterministic, CPU),
    with loader workers and on-the-fly augmentation, whose randomness must resume too."""
    common = tiny(["trainer.deterministic=true", "test=false", "data.num_workers=2", "aug=combine",
                   "scheduler.T_max=4", "callbacks.mask_images=null"])  # fmt: skip
    whole = run_cli("src.train", *common, "trainer.max_epochs=4", "hydra.run.dir=whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    stopped = run_cli("src.train", *common, "trainer.max_epochs=2", "hydra.run.dir=stopped", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    # Only the checkpoint and a longer run on the command line: the rest comes from the checkpoint.
    resumed = run_cli("src.train", "ckpt_path=stopped/checkpoints/last.ckpt", "trainer.max_epochs=4", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 epochs (8 steps) done of 4" in resumed.stdout

    assert not (tmp_path / "outputs").exists()  # no new run directory
    metrics = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert metrics["resumed_from"]["epoch"] == 1 and metrics["epochs_completed"] == 4
    assert len(list((tmp_path / "stopped" / ".hydra").glob("resumed_*/overrides.yaml"))) == 1
    assert (tmp_path / "stopped" / ".hydra" / "overrides.yaml").read_text().count("max_epochs=2") == 1  # first run's kept
    reference = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    result = torch.load(tmp_path / "stopped" / "checkpoints" / "last.ckpt", weights_only=True)
    assert result["global_step"] == reference["global_step"] == 16
    for name, weight in reference["state_dict"].items():
        assert torch.equal(result["state_dict"][name], weight), name
    moments = lambda state: [s["exp_avg"] for s in state["optimizer_states"][0]["state"].values()]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(moments(result), moments(reference)))


def test_a_resumed_run_refuses_a_different_config_choice(train_run, tmp_path):
    train_run("debug=fast", run_dir=tmp_path / "first")
    resumed = run_cli("src.train", "ckpt_path=first/checkpoints/last.ckpt", "model=resnet34_unet", cwd=tmp_path)
    assert resumed.returncode != 0
    assert "model=resnet34_unet: a resumed run keeps the checkpoint's config-group choices" in resumed.stderr


def test_a_resume_refuses_optimizer_and_scheduler_keys_that_the_restored_state_would_overwrite(train_run, tmp_path):
    from src.compose import resume_config

    run_dir, _ = train_run("debug=fast", run_dir=tmp_path / "first")
    last = run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"optimizer.lr=1e-5, scheduler.eta_min=0.1: a resumed run restores the optimizer and scheduler state"):
        resume_config(last, ["optimizer.lr=1e-5", "trainer.max_epochs=3", "scheduler.eta_min=0.1"], {"model"}, str(run_dir))
    assert resume_config(last, ["trainer.max_epochs=3"], {"model"}, str(run_dir)).trainer.max_epochs == 3


def test_resume_config_moves_the_run_paths_of_a_checkpoint_kept_elsewhere(train_run, tmp_path):
    from src.compose import resume_config

    run_dir, _ = train_run("debug=fast", run_dir=tmp_path / "cluster_run")
    kept = tmp_path / "downloaded" / "last.ckpt"
    kept.parent.mkdir()
    (run_dir / "checkpoints" / "last.ckpt").rename(kept)
    cfg = resume_config(kept, ["trainer.max_epochs=5", f"ckpt_path={kept}"], {"model", "data"}, str(tmp_path / "new"))
    assert cfg.trainer.max_epochs == 5 and cfg.model.base_width == 4 and cfg.ckpt_path == str(kept)
    assert cfg.paths.output_dir == str(tmp_path / "new")
    assert cfg.callbacks.best_checkpoint.dirpath == str(tmp_path / "new" / "checkpoints")
    with pytest.raises(KeyError, match="trainer.max_epoch: not a key"):
        resume_config(kept, ["trainer.max_epoch=5"], set(), str(tmp_path / "new"))


def test_a_short_run_learns_the_shapes(train_run):
    _, metrics = train_run("trainer.max_epochs=15", "data.num_train=160", "data.num_test=32", "model.base_width=8")
    assert metrics["test"]["test/dice"] > 0.8


def test_multirun_writes_one_run_per_value(tmp_path):
    result = run_cli("src.train", "-m", "optimizer.lr=1e-3,3e-3", "debug=fast", *tiny([]), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "multirun").glob("*/*/*/metrics.json"))
    assert [run.name for run in runs] == ["0", "1"]
    for run in runs:
        assert (run / "checkpoints" / "best.ckpt").is_file()
        assert "test/dice" in json.loads((run / "metrics.json").read_text())["test"]
    learning_rates = {OmegaConf.load(run / "config.yaml").optimizer.lr for run in runs}
    assert learning_rates == {1e-3, 3e-3}


def test_unknown_model_choice_lists_the_available_ones(tmp_path):
    result = run_cli("src.train", "model=no_such_model", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/no_such_model'" in result.stderr
    assert "unet" in result.stderr.split("Available options")[1]


@pytest.mark.slow
def test_default_run_reaches_dice_090(tmp_path):
    """Acceptance of the spine: the README's default training run on shapes."""
    result = run_cli("src.train", f"hydra.run.dir={tmp_path}/run", cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["test/dice"] >= 0.90


@pytest.mark.slow
def test_iou_and_dice_ce_losses_train_as_well_as_ce(train_run, tmp_path):
    """The default model on default shapes: loss=iou and loss=dice_ce within 0.03 test dice of loss=ce."""
    full = ["data.num_train=600", "data.num_val=150", "data.num_test=150", "data.image_size=64", "data.batch_size=16",
            "model.base_width=16", "model.depth=4"]  # fmt: skip
    dice = {
        loss: train_run(f"loss={loss}", *full, run_dir=tmp_path / loss)[1]["test"]["test/dice"]
        for loss in ("ce", "iou", "dice_ce")
    }
    assert abs(dice["iou"] - dice["ce"]) <= 0.03, dice
    assert abs(dice["dice_ce"] - dice["ce"]) <= 0.03, dice
