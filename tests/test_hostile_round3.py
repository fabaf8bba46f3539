"""Hostile inputs, round three (issue 22): each item reproduced, then refused by name or handled."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_cli, tiny


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
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


def folder_module(root, **kwargs):
    from src.data.folder import FolderDataModule

    return FolderDataModule(root=str(root), image_size=32, batch_size=4, cache_dir=str(root.parent / "cache"), **kwargs)


def binary_folder(root, count=24, values=(0, 255), seed=0):
    """Binary masks as most tools save them: background 0, foreground ``values[1]``."""
    from tests.fixtures import blob_mask, red_on_blue

    rng = np.random.default_rng(seed)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        ids = blob_mask(rng, 48, 48)
        Image.fromarray(red_on_blue(ids, rng)).save(root / "images" / f"cell_{index:02d}.png")
        Image.fromarray(np.where(ids > 0, values[1], values[0]).astype(np.uint8)).save(root / "masks" / f"cell_{index:02d}.png")
    return root


def test_binary_masks_stored_as_0_and_255_train_as_foreground_and_the_log_says_so(tmp_path):
    root = binary_folder(tmp_path / "membranes", count=48)
    result = run_cli("src.train", "data=folder", f"data.root={root}", "data.num_classes=2", "trainer.max_epochs=6",
                     *tiny(["data=folder"]), "model.base_width=8", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hold only the values 0 and 255 (binary masks): read as 0 = class 0 (background), 255 = class 1" in result.stdout
    assert "hold only the values 0 and 255" in (tmp_path / "run" / "train.log").read_text()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["test/dice"] > 0.5


def test_mask_values_map_stored_values_and_an_all_ignore_split_is_refused(tmp_path):
    from src.data.files import DatasetError

    root = binary_folder(tmp_path / "data", values=(0, 128))
    mapped = folder_module(root, num_classes=2, mask_values={0: 0, 128: 1})
    train = mapped.load_split("train")
    assert set(np.unique(np.asarray(train.masks)).tolist()) == {0, 1}
    # The README's form on the command line:
    checked = run_cli("src.data.check", "data=folder", f"data.root={root}", "data.num_classes=2", "data.mask_values={0: 0, 128: 1}",
                      f"data.cache_dir={tmp_path / 'cache'}", "hydra.run.dir=check", cwd=tmp_path)  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-2000:]
    with pytest.raises(DatasetError, match=r"mask values \[128\] are not in the value -> class map \{0: 0, 255: 1\}"):
        folder_module(root, num_classes=2, mask_values={0: 0, 255: 1}).load_split("train")

    ignored = binary_folder(tmp_path / "ignored", values=(255, 255))
    with pytest.raises(DatasetError, match=r"every pixel of every train mask is 255 \(data.ignore_index\)"):
        folder_module(ignored, num_classes=3).load_split("train")


def test_palette_masks_are_read_by_their_colours_when_the_class_list_gives_colours(tmp_path):
    from tests.fixtures import FOLDER_CLASSES, make_folder

    root = make_folder(tmp_path / "data", count=6, coding="rgb")
    palette_order = [2, 0, 1]  # the tool's palette lists the classes in another order
    for mask_path in sorted((root / "masks").glob("*.png")):
        colours = np.asarray(Image.open(mask_path).convert("RGB"))
        ids = np.zeros(colours.shape[:2], np.uint8)
        for class_id, (_, colour) in enumerate(FOLDER_CLASSES):
            ids[(colours == colour).all(-1)] = palette_order.index(class_id)
        image = Image.fromarray(ids, mode="P")
        image.putpalette([c for index in palette_order for c in FOLDER_CLASSES[index][1]])
        image.save(mask_path)
        assert Image.open(mask_path).mode == "P"
    dm = folder_module(root)
    image, mask = dm.read_sample(dm.list_split("train")[0])
    expected = np.asarray(Image.open(dm.list_split("train")[0].mask).convert("RGB"))
    colour_ids = {tuple(colour): k for k, (_, colour) in enumerate(FOLDER_CLASSES)}
    for colour, class_id in colour_ids.items():
        assert (mask[(expected == colour).all(-1)] == class_id).all()


def test_images_in_sub_folders_and_upper_case_suffixes_are_read(tmp_path):
    from src.data.check import check
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=12, coding="index")
    (root / "images" / "batch1").mkdir()
    (root / "masks" / "batch1").mkdir()
    for index, image in enumerate(sorted((root / "images").glob("*.jpg"))):
        mask = root / "masks" / f"{image.stem}.png"
        if index % 2:
            image.rename(root / "images" / "batch1" / image.name.upper())
            mask.rename(root / "masks" / "batch1" / f"{image.stem.upper()}.PNG")
    dm = folder_module(root, num_classes=3, val_fraction=0.2, test_fraction=0.2)
    names = [s.name for split in ("train", "val", "test") for s in dm.list_split(split)]
    assert len(names) == 12 and sum(name.startswith("batch1/") for name in names) == 6
    report = check(dm)
    assert not [p for p in report["problems"] if "without" in p], report["problems"]


def test_duplicate_class_names_are_refused_and_unnamed_classes_are_class_k(tmp_path):
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=6, coding="rgb")
    (root / "classes.csv").write_text("name,r,g,b\nbackground,0,0,0\nroad,128,64,128\nroad,0,200,0\n")
    with pytest.raises(ValueError, match=r"class names must differ: 'road' named more than once"):
        folder_module(root)
    assert folder_module(make_folder(tmp_path / "plain", count=6, coding="index"), num_classes=3).class_names == [
        "class_0", "class_1", "class_2"]  # fmt: skip


@pytest.mark.parametrize("dialect", ["excel_bom_crlf", "semicolons", "tabs"])
def test_a_classes_csv_saved_by_a_spreadsheet_is_read(tmp_path, dialect):
    from tests.fixtures import FOLDER_CLASSES, make_folder

    root = make_folder(tmp_path / "data", count=6, coding="rgb")
    separator = {"excel_bom_crlf": ",", "semicolons": ";", "tabs": "\t"}[dialect]
    lines = [separator.join(["name", "r", "g", "b"])] + [separator.join([n, *map(str, c)]) for n, c in FOLDER_CLASSES]
    (root / "classes.csv").write_bytes(("\ufeff" if "bom" in dialect else "").encode() + "\r\n".join(lines).encode() + b"\r\n")
    dm = folder_module(root)
    assert dm.class_names == ["background", "road", "tree"] and dm.colour_ids[(128, 64, 128)] == 1


def test_a_classes_csv_line_that_is_not_name_r_g_b_is_named_with_its_line(tmp_path):
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=6, coding="rgb")
    (root / "classes.csv").write_text("name,r,g,b\nbackground,0,0,0\nroad,red,64,128\n")
    with pytest.raises(ValueError, match=r"classes.csv, line 3: 'road,red,64,128' is not name,r,g,b"):
        folder_module(root)


@pytest.mark.slow
def test_eval_draws_its_pictures_in_eval_mode_and_writes_metrics_first(trained_run, tmp_path):
    from src.callbacks.mask_images import evenly_spaced_batch, prediction_grid
    from src.compose import load_mask_model

    _, metrics = trained_run
    # A small sliding window, one window a pass: batch norm in training mode cannot take its 1x1 bottleneck.
    result = run_cli("src.eval", f"ckpt_path={metrics['best_checkpoint']}", "task.inference.mode=slide",
                     "task.inference.window=8", "task.inference.batch=1", "task.inference.scales=[0.5,1.0]",
                     "hydra.run.dir=eval", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    assert (tmp_path / "eval" / "images" / "test_masks.png").is_file()

    cfg, task = load_mask_model(metrics["best_checkpoint"])
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("test")
    samples = evenly_spaced_batch(datamodule.datasets["test"], 4, datamodule)
    task.eval()
    expected = prediction_grid(task, samples, datamodule)
    task.train()  # as Lightning leaves it after trainer.test
    assert np.array_equal(prediction_grid(task, samples, datamodule), expected)
    assert task.training  # and put back as it was


@pytest.mark.parametrize("arch", ["Unet", "UnetPlusPlus"])
def test_smp_encoder_depth_alone_gives_a_decoder_of_that_depth(arch):
    from src.models.smp_net import SMPNet

    net = SMPNet(arch=arch, encoder="resnet18", encoder_depth=3).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_val_or_test_fraction_that_leaves_a_split_empty_names_the_key(tmp_path):
    from src.data.files import DatasetError
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=10, coding="index")
    with pytest.raises(DatasetError, match=r"data.val_fraction=0 leaves no val pairs of 9"):
        folder_module(root, num_classes=3, val_fraction=0).list_split("train")
    with pytest.raises(DatasetError, match=r"data.test_fraction=1 takes all 10 pairs for test"):
        folder_module(root, num_classes=3, test_fraction=1).list_split("train")


def test_a_phone_photo_with_an_exif_orientation_is_read_as_displayed_with_its_mask(tmp_path):
    from src.data.files import read_image
    from tests.fixtures import blob_mask, red_on_blue

    rng = np.random.default_rng(0)
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for index in range(10):
        shown = blob_mask(rng, 60, 40)  # as displayed: 40 wide, 60 high
        photo = red_on_blue(shown, rng)
        stored = np.rot90(photo, 1)  # stored turned; orientation 6 says: turn 90 degrees clockwise to display
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "data" / "images" / f"p{index}.jpg", exif=exif, quality=98)
        Image.fromarray(shown.astype(np.uint8)).save(tmp_path / "data" / "masks" / f"p{index}.png")
    path = tmp_path / "data" / "images" / "p0.jpg"
    assert Image.open(path).size == (60, 40)  # stored
    assert read_image(path).shape == (60, 40, 3)  # displayed (src.predict reads its inputs with this too)
    dm = folder_module(tmp_path / "data", num_classes=2)
    for sample in dm.list_split("train"):
        image, mask = dm.read_sample(sample)
        red = image[..., 0].astype(int) > image[..., 2].astype(int)  # the fixture paints class 1 red
        assert (red == (mask == 1)).mean() > 0.95


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_sigterm_to_predict_leaves_only_whole_files_and_says_what_was_done(trained_run, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    _, metrics = trained_run
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for index in range(60):
        Image.fromarray(rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)).save(photos / f"p{index:02d}.png")
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "src.predict", f"ckpt_path={metrics['best_checkpoint']}", f"input={photos}",
                                f"output={out}", "batch_size=1"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*_overlay.png"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    written = sorted(out.glob("*.png"))
    assert 3 <= len([p for p in written if p.name.endswith("_overlay.png")]) < 60
    for path in written:
        with Image.open(path) as image:
            image.load()  # a truncated PNG raises here
    assert not list(out.glob(".*")), "no temporary files left"
    assert "Interrupted by SIGTERM after" in stdout + stderr and "not done" in stdout + stderr


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_export_and_predict_to_a_place_that_cannot_be_written_is_one_line(trained_run, tmp_path):
    _, metrics = trained_run
    (tmp_path / "a_file").write_text("not a folder")
    for program, extra in [("src.export", []), ("src.predict", [f"input={tmp_path / 'a_file'}"])]:
        result = run_cli(program, f"ckpt_path={metrics['best_checkpoint']}", f"output={tmp_path / 'a_file' / 'out'}", *extra, cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-2000:]
        assert f"output={tmp_path / 'a_file' / 'out'}: cannot write there" in result.stderr and "Traceback" not in result.stderr


def test_a_failed_export_check_leaves_no_model_file(trained_run, tmp_path):
    from src.export import export

    _, metrics = trained_run
    with pytest.raises(ValueError, match="does not reproduce the PyTorch net"):
        export(metrics["best_checkpoint"], "onnx", tmp_path / "exported", tolerance=-1.0)  # no difference passes
    assert not list((tmp_path / "exported").iterdir())


@pytest.mark.slow  # two command lines: CI runs it with -m slow
@pytest.mark.parametrize("setting,message", [
    ("task.inference.scales=[0.01]", "task.inference.scales: 0.01 turns a 32x32 image into less than one pixel"),
    ("task.inference.overlap=1.5", "task.inference.overlap must be in [0, 1), got 1.5"),
])  # fmt: skip
def test_bad_inference_settings_in_eval_are_one_line(trained_run, tmp_path, setting, message):
    _, metrics = trained_run
    result = run_cli("src.eval", f"ckpt_path={metrics['best_checkpoint']}", setting, "hydra.run.dir=eval", cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "full_key" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_resume_takes_data_root_of_a_dataset_that_the_default_data_lacks(tmp_path):
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=12, coding="index")
    common = ["data=folder", "data.num_classes=3", "trainer.max_epochs=1", "test=false", *tiny(["data=folder"])]
    first = run_cli("src.train", *common, f"data.root={root}", "hydra.run.dir=first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.move(root, tmp_path / "moved_data")
    resumed = run_cli("src.train", "ckpt_path=first/checkpoints/last.ckpt", f"data.root={tmp_path / 'moved_data'}",
                      "trainer.max_epochs=2", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2
    mistyped = run_cli("src.train", "ckpt_path=first/checkpoints/last.ckpt", "data.rooot=x", cwd=tmp_path)
    assert mistyped.returncode != 0 and "data.rooot" in mistyped.stderr


def test_an_image_size_below_the_nets_smallest_input_is_refused(train_run):
    with pytest.raises(ValueError, match=r"data.image_size=1: src.models.unet.UNet takes inputs of at least 8 px"):
        train_run("data.image_size=1")


def test_an_rgba_mask_with_transparent_pixels_is_named_with_its_alpha(tmp_path):
    from src.data.files import DatasetError
    from tests.fixtures import make_folder

    root = make_folder(tmp_path / "data", count=6, coding="rgb")
    mask_path = sorted((root / "masks").glob("*.png"))[0]
    colours = np.asarray(Image.open(mask_path).convert("RGB"))
    alpha = np.where((colours == 0).all(-1), 0, 255).astype(np.uint8)  # background drawn transparent, stored white
    stored = np.where(alpha[..., None] == 0, 255, colours).astype(np.uint8)
    Image.fromarray(np.dstack([stored, alpha]), mode="RGBA").save(mask_path)
    dm = folder_module(root)
    sample = next(s for split in ("train", "val", "test") for s in dm.list_split(split) if s.mask == mask_path)
    with pytest.raises(DatasetError, match=r"colours \(255, 255, 255\) are no class's colour.*alpha channel: \d+ of its pixels are transparent"):
        dm.read_sample(sample)


def test_report_says_a_truncated_metrics_json_is_unreadable(tmp_path):
    from src.report import read_run

    run = tmp_path / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / "run_status.json").write_text(json.dumps({"status": "completed", "pid": 1, "host": "h", "time": 2.0, "started": 1.0}))
    (run / "metrics.json").write_text('{"monitor": "val/dice", "best_sc')
    result = read_run(run)
    assert result.state == "incomplete" and "metrics.json is unreadable" in result.error


@pytest.mark.slow  # a CLI run or two: CI runs it with -m slow
def test_a_second_eval_into_a_folder_another_eval_is_writing_is_refused(trained_run, tmp_path):
    import socket

    _, metrics = trained_run
    (tmp_path / "eval").mkdir()
    other = __import__("subprocess").Popen(["sleep", "60"])
    try:
        (tmp_path / "eval" / "run_status.json").write_text(json.dumps(
            {"status": "running", "pid": other.pid, "host": socket.gethostname(), "time": 1.0}))  # fmt: skip
        result = run_cli("src.eval", f"ckpt_path={metrics['best_checkpoint']}", "hydra.run.dir=eval", cwd=tmp_path)
    finally:
        other.kill()
        other.wait()  # reaped: the pid is gone
    assert result.returncode == 1
    assert f"hydra.run.dir={tmp_path / 'eval'}: another process (pid {other.pid}) is running there now" in result.stderr
    done = run_cli("src.eval", f"ckpt_path={metrics['best_checkpoint']}", "hydra.run.dir=eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "run_status.json").read_text())["status"] == "completed"


def test_the_progress_bar_shows_few_values_and_lightnings_tips_are_dropped():
    import logging

    from src.callbacks.progress import ProgressBar
    from src.utils.log import route_library_logs

    logged = {"train/loss_step": 0.5, "train/loss_epoch": 0.6, "train/dice": 0.8, "val/loss": 0.4, "val/dice": 0.9, "val/miou": 0.7, "v_num": 0}
    assert ProgressBar(monitor="val/dice").few(logged) == {"train/loss": 0.5, "val/dice": 0.9}
    assert ProgressBar(monitor="val/miou").few(logged) == {"train/loss": 0.5, "val/miou": 0.7}
    route_library_logs()
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    record = tips.makeRecord(tips.name, logging.INFO, __file__, 1, "💡 Tip: For seamless cloud logging, try installing litlogger", (), None)
    assert not tips.filter(record)
