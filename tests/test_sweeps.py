"""Sweeps and scale-out: the Optuna search, DDP on CPU processes, the SLURM launcher config."""

import json

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import src.utils.resolvers  # noqa: F401  (the resolvers conf/ uses)
from tests.conftest import CONF_DIR, run_cli
from tests.fixtures import make_pets

TINY_PETS = ["debug=fast", "data.image_size=32", "data.batch_size=4", "data.num_workers=0", "model.base_width=4",
             "model.depth=3", "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false"]  # fmt: skip


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_optuna_search_on_pets_runs_trials_within_its_search_space(tmp_path):
    root = make_pets(tmp_path / "pets")
    result = run_cli("src.train", "-m", "hparams_search=pets_optuna", "hydra.sweeper.n_trials=3", f"data.root={root}",
                     *TINY_PETS, "hydra.sweep.dir=search", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted((tmp_path / "search").glob("[0-9]*/metrics.json"))
    assert len(trials) == 3
    for trial in trials:
        config = yaml.safe_load((trial.parent / "config.yaml").read_text())
        assert 1e-5 <= config["optimizer"]["lr"] <= 1e-2
        assert config["data"]["n_aug"] in (0, 1, 2) and config["data"]["_target_"] == "src.data.pets.PetsDataModule"
        assert json.loads(trial.read_text())["monitor"] == "val/dice"
    study = yaml.safe_load((tmp_path / "search" / "optimization_results.yaml").read_text())
    assert set(study["best_params"]) == {"optimizer.lr", "aug", "data.n_aug", "loss"}
    assert study["best_params"]["aug"] in ("flip", "combine") and study["best_params"]["loss"] in ("ce", "dice", "dice_ce", "focal")
    best = max(json.loads(trial.read_text())["best_score"] for trial in trials)
    assert study["best_value"] == pytest.approx(best)


def test_slurm_launcher_sizes_jobs_from_the_trainer_and_data_settings():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                                "data=pets", "data.num_workers=6"], return_hydra_config=True)  # fmt: skip
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node, launcher.cpus_per_task) == (2, 4, 4, 7)
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_splits_every_epoch_between_them(tmp_path):
    result = run_cli("src.train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
                     "data.image_size=32", "data.batch_size=8", "data.num_train=32", "data.num_val=16", "data.num_test=16",
                     "model.base_width=4", "model.depth=3", "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false",
                     "hydra.run.dir=run", cwd=tmp_path, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 32 training items, batch 8 per process, 2 processes: 2 steps an epoch instead of 4.
    assert metrics["global_step"] == 4 and metrics["epochs_completed"] == 2
    assert (tmp_path / "run" / "train_ddp_process_1.log").is_file()  # the second process ran
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file() and 0 <= metrics["test"]["test/dice"] <= 1
