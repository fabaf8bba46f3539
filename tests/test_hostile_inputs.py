"""Hostile but realistic inputs (issue 17): each is refused by name or handled, nothing on disk lost."""

import json

import numpy as np
import pytest
from PIL import Image

from src.data.files import DatasetError, read_image
from tests.conftest import run_cli, tiny
from tests.fixtures import make_pets


def pets_module(root, **kwargs):
    from src.data.pets import PetsDataModule

    return PetsDataModule(root=str(root), num_classes=2, image_size=32, batch_size=4, cache_dir=str(root.parent / "cache"), **kwargs)


def test_a_16_bit_image_is_scaled_to_8_bits_not_read_as_white(tmp_path):
    ramp = (np.arange(40 * 50).reshape(40, 50) * 30).astype(np.uint16)  # 0 .. 59970
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    assert Image.open(tmp_path / "scan.png").mode == "I;16"
    pixels = read_image(tmp_path / "scan.png", "RGB")
    assert pixels.shape == (40, 50, 3) and pixels.dtype == np.uint8
    assert np.abs(pixels[..., 0].astype(float) - ramp / 257).max() <= 0.5  # the full 16-bit range -> 0..255
    assert pixels.mean() < 200  # not the all-white image Pillow's own conversion gives


def test_a_16_bit_mask_with_values_above_255_is_named_in_check_and_setup(tmp_path):
    from src.data.check import check

    root = make_pets(tmp_path / "pets")
    trimap = root / "annotations" / "trimaps" / "Breed_3.png"
    values = np.asarray(Image.open(trimap)).astype(np.uint16)
    values[0, 0] = 300
    Image.fromarray(values).save(trimap)
    report = check(pets_module(root))
    assert any("Breed_3.png" in problem and "0..255" in problem for problem in report["problems"]), report["problems"]
    with pytest.raises(DatasetError, match=r"Breed_3.png: a I;16 mask with values 1..300"):
        pets_module(root).setup("fit")


def test_data_check_fails_on_an_empty_split_list(tmp_path):
    from src.data.check import check

    root = make_pets(tmp_path / "pets")
    (root / "annotations" / "trainval.txt").write_text("")
    report = check(pets_module(root))
    assert report["counts"]["train"] == 0 and any(p.startswith("train split: no items") for p in report["problems"])


@pytest.fixture
def checkpoint(trained_run):
    """The session's trained run (tests/conftest.py); tests copy it before changing anything."""
    return trained_run[0] / "checkpoints" / "best.ckpt"


def test_a_read_only_dataset_folder_caches_in_the_users_cache_and_says_so(tmp_path, monkeypatch, caplog):
    import logging
    import os

    from src.data import cache
    from src.data.pets import PetsDataModule

    root = make_pets(tmp_path / "shared" / "pets")
    # The tests run as root, who may write anywhere: deny what a lab member gets on a shared dataset.
    monkeypatch.setattr(cache.os, "access", lambda path, mode: not str(path).startswith(str(root)) or not mode & os.W_OK)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home_cache"))
    with caplog.at_level(logging.INFO):
        dm = PetsDataModule(root=str(root), num_classes=2, image_size=32, batch_size=4)
        dm.setup("fit")
    assert dm.cache_dir.parent == tmp_path / "home_cache" / "seglab" and dm.cache_dir.name.startswith("pets-")
    assert any(p.name.startswith("pets-train-32-") for p in dm.cache_dir.iterdir())
    assert not (root / ".seglab_cache").exists()
    assert caplog.text.count("cannot be written") == 1 and "data.cache_dir" in caplog.text


def test_a_cache_that_cannot_be_written_is_explained(tmp_path):
    root = make_pets(tmp_path / "pets")
    from src.data.pets import PetsDataModule

    dm = PetsDataModule(root=str(root), num_classes=2, image_size=32, batch_size=4, cache_dir="/sys/seglab_cache")
    with pytest.raises(DatasetError, match=r"cannot use the cache /sys/seglab_cache/pets-train.*data.cache_dir.*data.cache=false"):
        dm.setup("fit")


def copy_of_run(checkpoint, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(checkpoint.parent.parent, run_dir)
    return run_dir


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=0", "data.batch_size must be a whole number >= 1, got 0"),
    ("model.base_width=32", "does not fit UNet (another architecture or class count?): layers of another shape"),
], ids=["bad-value", "another-net"])  # fmt: skip
def test_a_resume_refused_before_training_leaves_the_finished_run_as_it_was(checkpoint, tmp_path, override, message):
    run_dir = copy_of_run(checkpoint, tmp_path)
    before = {name: (run_dir / name).read_bytes() for name in ("run_status.json", "config.yaml")}
    assert json.loads(before["run_status.json"])["status"] == "completed"
    result = run_cli("src.train", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", override, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert {name: (run_dir / name).read_bytes() for name in before} == before


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_eval_refuses_overrides_that_change_the_model_naming_them(checkpoint, tmp_path):
    choice = run_cli("src.eval", f"ckpt_path={checkpoint}", "model=unet_bilinear", cwd=tmp_path)
    assert choice.returncode == 1 and "model=unet_bilinear: src.eval keeps the checkpoint's config-group choices" in choice.stderr
    width = run_cli("src.eval", f"ckpt_path={checkpoint}", "model.base_width=32", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert width.returncode == 1 and "does not fit UNet" in width.stderr
    assert "layers of another shape (file vs model): decoder.blocks.0" in width.stderr
    assert "Traceback" not in choice.stderr + width.stderr


@pytest.mark.parametrize("override, message", [
    ("model.num_classes=3", "model.num_classes=3: the model gives 3 channels for data with 2 classes"),
    ("loss=bce", "loss=bce needs a 1-channel (sigmoid) head, but the model gives 2 channels"),
], ids=["head", "loss"])  # fmt: skip
def test_a_head_that_does_not_fit_the_data_or_loss_fails_before_data_is_read(train_run, monkeypatch, override, message):
    from src.data.shapes import ShapesDataModule

    monkeypatch.setattr(ShapesDataModule, "load_split", lambda *a: pytest.fail("data was read"))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_run(override)


def test_a_broken_file_met_in_training_ends_in_one_line_naming_it(tmp_path):
    root = make_pets(tmp_path / "pets")
    (root / "images" / "Breed_5.jpg").write_bytes(b"\xff\xd8\xff broken")
    result = run_cli("src.train", "data=pets", f"data.root={root}", "data.cache=false", "debug=fast", *tiny(["data=pets"]),
                     "data.num_workers=2", "data.persistent_workers=false", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Breed_5.jpg: unreadable image" in result.stderr.strip().splitlines()[-1]
    assert "Traceback (most recent call last)" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_a_checkpoint_damaged_mid_file_is_refused_in_one_line(checkpoint, tmp_path):
    run_dir = copy_of_run(checkpoint, tmp_path)
    for name in ("best.ckpt", "last.ckpt"):
        path = run_dir / "checkpoints" / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))  # the second half zeroed
    status = (run_dir / "run_status.json").read_bytes()
    evaluated = run_cli("src.eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    resumed = run_cli("src.train", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3", cwd=tmp_path)
    for result in (evaluated, resumed):
        assert result.returncode == 1 and "not a loadable checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "run_status.json").read_bytes() == status
