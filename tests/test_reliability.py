"""Faults a long sweep must survive: interrupted writes, full disks, kills, NaNs, bad input."""

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import struct
import time
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from src.callbacks.finite_loss import NonFiniteLossError
from src.data.files import DatasetError, read_image, read_raw_mask
from src.utils import checkpoint as checkpoint_module
from src.utils.checkpoint import AtomicCheckpointIO, CheckpointWriteError
from tests.conftest import ROOT, run_cli, tiny

shutil_usage = namedtuple("usage", "total used free")


def test_a_failed_checkpoint_write_keeps_the_previous_file_and_says_which(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "weights": torch.arange(1000.0)}, path)

    def disk_fills_up(obj, file):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_fills_up)
    with pytest.raises(CheckpointWriteError, match=rf"could not write checkpoint {path}: No space left on device .*MiB free.*previous last.ckpt is kept"):
        io.save_checkpoint({"epoch": 2, "weights": torch.zeros(1000)}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["weights"], torch.arange(1000.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


# A process that saves checkpoints back to back, each a different version: killed at any moment,
# most often in the middle of a write.
SAVE_FOREVER = """
import sys, torch
from src.utils.checkpoint import AtomicCheckpointIO
io, version = AtomicCheckpointIO(), 0
while True:
    version += 1
    io.save_checkpoint({"version": version, "weights": torch.full((4_000_000,), float(version))}, sys.argv[1])
    print(version, flush=True)
"""


def test_a_process_killed_while_writing_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    rng = random.Random(0)
    for _ in range(2):
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip()  # at least one checkpoint written
        time.sleep(rng.uniform(0.05, 0.6))
        child.kill()  # SIGKILL: no handler, no cleanup
        child.wait()
        state = torch.load(path, weights_only=True)
        assert torch.equal(state["weights"], torch.full((4_000_000,), float(state["version"])))
    AtomicCheckpointIO().save_checkpoint({"version": 0}, path)  # the next save clears killed writes' files
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


TRAIN = [sys.executable, "-m", "src.train", *tiny(["trainer.max_epochs=40", "test=false", "model.base_width=16"])]


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_every_time(tmp_path):
    run_dir = tmp_path / "run"
    last, best = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "best.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1)
    epochs = []
    for attempt in range(3):
        args = TRAIN + [f"hydra.run.dir={run_dir}"] + ([f"ckpt_path={last}"] if attempt else [])
        process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if attempt:
            time.sleep(rng.uniform(6, 9))  # start-up, then a few epochs
        _wait_for(last, process)
        time.sleep(rng.uniform(0.0, 2.0))
        process.kill()
        process.wait()
        for path in (last, best):
            state = torch.load(path, weights_only=True)  # whole, loadable
            assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())
        epochs.append(torch.load(last, weights_only=True)["epoch"])
    assert epochs == sorted(epochs) and epochs[-1] > epochs[0]  # every resume went on from where it was
    done = run_cli("src.train", f"ckpt_path={last}", f"trainer.max_epochs={epochs[-1] + 2}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_completed"] == epochs[-1] + 2 and metrics["resumed_from"]["epoch"] == epochs[-1]
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.ckpt", "last.ckpt"]  # killed writes cleaned up


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)],
                         ids=["SIGTERM", "Ctrl-C"])  # fmt: skip
def test_an_interrupted_run_keeps_last_ckpt_says_how_to_resume_and_exits_non_zero(tmp_path, signum, status):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    # SIGINT back to its default in the child: a suite started in the background (nohup, `cmd &`) hands its
    # children SIGINT ignored, and Python then installs no KeyboardInterrupt handler (as for any background job).
    process = subprocess.Popen(TRAIN + [f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    _wait_for(last, process)
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == status, output[-3000:]
    assert f"Interrupted by {'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'}" in output
    command = output.split("Resume with:\n")[1].split("\n")[0].strip()
    assert command == f"python -m src.train ckpt_path={last.resolve()}"
    assert json.loads((run_dir / "run_status.json").read_text())["status"] == "interrupted"
    if signum == signal.SIGINT:
        return  # resuming is the same for both; run it once
    epoch = torch.load(last, weights_only=True)["epoch"]
    resumed = run_cli(*command.split()[2:], f"trainer.max_epochs={epoch + 2}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == epoch + 2


class LossNaNFromStep(torch.nn.Module):
    """Cross-entropy that turns NaN from a given training step on (counted in calls)."""

    def __init__(self, from_call: int, **_):
        super().__init__()
        self.from_call, self.calls = from_call, 0

    def forward(self, logits, masks):
        self.calls += self.training
        loss = torch.nn.functional.cross_entropy(logits, masks.long(), ignore_index=255)
        return loss * float("nan") if self.calls >= self.from_call else loss


def test_training_stops_at_the_first_nan_loss_and_keeps_the_last_good_checkpoint(train_run, tmp_path):
    # 32 items, batch 8: 4 steps an epoch; the 6th training step (epoch 2) gives NaN.
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 6 \(epoch 2\).*trainer.detect_anomaly=true"):
        train_run("loss._target_=tests.test_reliability.LossNaNFromStep", "+loss.from_call=6", "trainer.max_epochs=5")
    run_dir = tmp_path / "run"
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and state["global_step"] == 4  # the end of epoch 1, the last good one
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())
    assert json.loads((run_dir / "run_status.json").read_text())["status"] == "failed"


def test_a_disk_without_room_for_the_checkpoints_fails_before_training(train_run, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda path: shutil_usage(total=10**9, used=10**9 - 2**20, free=2**20))
    with pytest.raises(CheckpointWriteError, match=r"checkpoints: 1 MiB free, but this run's checkpoints need about \d+ MiB.*paths.output_dir"):
        train_run("debug=fast", "model.base_width=32")
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists() and not (tmp_path / "run" / "tensorboard").exists()


def test_an_unwritable_run_directory_fails_before_training_naming_it(train_run, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(OSError, match=rf"cannot write the run directory {tmp_path / 'a_file' / 'run'}: Not a directory"):
        train_run("debug=fast", run_dir=tmp_path / "a_file" / "run")


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=-0.001", r"optimizer.lr must be a number >= 0, got -0.001"),
        ("data.batch_size=eight", r"data.batch_size must be a whole number >= 1, got 'eight'"),
        ("data.image_size=0", r"data.image_size must be a whole number >= 1, got 0"),
        ("data.n_aug=-1", r"data.n_aug must be a whole number >= 0, got -1"),
        ("trainer.max_epochs=-1", r"trainer.max_epochs must be a whole number >= 1, got -1"),
    ],
)
def test_a_bad_config_value_fails_before_any_data_is_read_naming_the_key(train_run, override, message, monkeypatch):
    from src.data.shapes import ShapesDataModule

    monkeypatch.setattr(ShapesDataModule, "load_split", lambda *a: pytest.fail("data was read"))
    with pytest.raises(ValueError, match=message):
        train_run(override)


def test_n_aug_beyond_what_the_augmentation_can_make_names_both_keys(train_run, monkeypatch):
    from src.data.shapes import ShapesDataModule

    monkeypatch.setattr(ShapesDataModule, "load_split", lambda *a: pytest.fail("data was read"))
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException, match=r"data.n_aug=3 but aug=CopyAugmentation makes at most 2 distinct copies"):
        train_run("aug=flip", "data.n_aug=3")


def test_an_image_size_the_model_cannot_train_on_fails_before_any_data_is_read(train_run, monkeypatch):
    from src.data.shapes import ShapesDataModule

    monkeypatch.setattr(ShapesDataModule, "load_split", lambda *a: pytest.fail("data was read"))
    # One image a batch, and ResNet34's 32x downsampling leaves one value per channel for batch norm.
    with pytest.raises(ValueError, match=r"data.image_size=32: src.models.resnet_unet.ResNetUNet cannot train on 1 x 3 x 32 x 32"):
        train_run("model=resnet34_unet", "data.image_size=32", "data.batch_size=1")


@pytest.mark.slow  # command lines: CI runs it with -m slow (the fast suite stays under 10 minutes)
def test_an_unknown_config_key_is_refused_naming_it(tmp_path):
    result = run_cli("src.train", "optimizer.learning_rate=0.1", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode != 0 and "optimizer.learning_rate" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # command lines: CI runs it with -m slow (the fast suite stays under 10 minutes)
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    from src.compose import read_run_config

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "seglab_config": {"model": Payload()}}, path)
    with pytest.raises(ValueError, match=rf"ckpt_path={path}: not a loadable checkpoint \(UnpicklingError"):
        read_run_config(path)
    for command in (["src.eval", "hydra.run.dir=eval"], ["src.predict", f"input={tmp_path}"]):
        result = run_cli(*command, f"ckpt_path={path}", cwd=tmp_path)
        assert result.returncode == 1 and "not a loadable checkpoint (UnpicklingError" in result.stderr
        assert "Traceback" not in result.stderr  # one clear line, not a stack
    assert not marker.exists()  # the payload never ran


def _image_bytes(kind: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    image = {
        "rgb": Image.fromarray(pixels),
        "grey": Image.fromarray(pixels[..., 0]),
        "palette": Image.fromarray(pixels).convert("P"),
        "alpha": Image.fromarray(np.dstack([pixels, pixels[..., :1]])),
        "16-bit": Image.fromarray(pixels[..., 0].astype(np.uint16) * 200),
        "1-bit": Image.fromarray(pixels[..., 0] > 128),
        "cmyk": Image.fromarray(pixels).convert("CMYK"),
    }[kind.split("-", 1)[1]]
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if kind.startswith("jpeg") else "PNG")
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header (valid CRC) announcing width x height pixels, with no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


KINDS = ["png-rgb", "png-grey", "png-palette", "png-alpha", "png-16-bit", "png-1-bit", "jpeg-rgb", "jpeg-grey", "jpeg-cmyk"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(KINDS),
    damage=st.sampled_from(["none", "truncated", "zero-byte", "flipped bytes", "garbage", "huge dimensions"]),
    where=st.floats(0.0, 1.0),
    noise=st.binary(min_size=1, max_size=256),
    side=st.integers(30_000, 2**31 - 1),
)
def test_image_and_mask_readers_end_every_damaged_file_in_an_error_naming_it(tmp_path, kind, damage, where, noise, side):
    content = _image_bytes(kind)
    cut = int(where * len(content))
    content = {
        "none": content,
        "truncated": content[:cut],
        "zero-byte": b"",
        "flipped bytes": content[:cut] + bytes(b ^ 0xFF for b in content[cut : cut + 8]) + content[cut + 8 :],
        "garbage": noise,
        "huge dimensions": _png_claiming(side, side),
    }[damage]
    path = tmp_path / f"Breed_1.{'jpg' if kind.startswith('jpeg') else 'png'}"
    path.write_bytes(content)
    for reader in (read_image, read_raw_mask):
        try:
            array = reader(path)
        except DatasetError as error:
            # unreadable, or a 16-bit mask whose values are no class ids
            assert str(path) in str(error) and ("unreadable" in str(error) or "must be 0..255" in str(error))
        else:  # a file that still decodes gives a whole picture, never a half-filled one silently
            assert array.ndim in (2, 3) and array.shape[:2] == (6, 7) and array.dtype in (np.uint8, np.uint16, np.int32, bool)


@pytest.mark.slow
def test_a_twelve_run_sweep_writes_every_run_and_memory_does_not_grow_run_over_run(tmp_path):
    result = run_cli("src.train", "-m", *tiny(["debug=fast", "optimizer.lr=1e-3,3e-3,1e-2", "aug=none,flip", "loss=ce,dice"]),
                     "hydra.sweep.dir=sweep", cwd=tmp_path, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(runs) == 12
    for run in runs:
        assert {"config.yaml", "metrics.json", "run_status.json"} <= {p.name for p in run.iterdir()}
        assert {"best.ckpt", "last.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    memory = [json.loads((run / "run_status.json").read_text())["memory_mb"] for run in runs]
    print("resident MiB at the end of each run:", [round(m) for m in memory])
    # After the first runs have loaded every library: the last four end within 5 % of runs 4-7.
    assert np.median(memory[8:]) < 1.05 * np.median(memory[3:7]), memory


def test_best_and_last_of_the_same_state_share_one_file_and_part_when_training_goes_on(tmp_path):
    io, folder = AtomicCheckpointIO(), tmp_path / "checkpoints"
    epoch_0 = {"epoch": 0, "global_step": 4, "weights": torch.arange(10.0)}
    io.save_checkpoint(epoch_0, folder / "best.ckpt")
    io.save_checkpoint(epoch_0, folder / "last.ckpt")  # the same state: linked, not written again
    io.save_checkpoint({**epoch_0, "callbacks": {}}, folder / "other.ckpt")  # other contents: written
    assert (folder / "last.ckpt").stat().st_ino == (folder / "best.ckpt").stat().st_ino
    assert (folder / "other.ckpt").stat().st_ino != (folder / "best.ckpt").stat().st_ino
    io.save_checkpoint({"epoch": 1, "global_step": 8, "weights": torch.zeros(10)}, folder / "last.ckpt")
    assert torch.equal(torch.load(folder / "best.ckpt", weights_only=True)["weights"], torch.arange(10.0))
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 1


@pytest.mark.slow  # command lines: CI runs it with -m slow (the fast suite stays under 10 minutes)
def test_runs_started_in_the_same_second_get_a_directory_each(tmp_path):
    from datetime import datetime, timedelta

    # Every second's run directory of the next minute exists already (as if other runs had just
    # started), so both runs below must claim another folder than the clock's.
    now = datetime.now()
    for second in range(60):
        (tmp_path / "outputs" / f"{now + timedelta(seconds=second):%Y-%m-%d/%H-%M-%S}").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "src.train", "debug=fast", *tiny([])]
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    run_dirs = sorted({line.split("Run directory: ")[1].strip() for out in outputs for line in out.splitlines() if "Run directory: " in line})
    assert len(run_dirs) == 2 and all(Path(d).name.rsplit("_", 1)[-1].isdigit() for d in run_dirs), run_dirs
    for run_dir in (tmp_path / d for d in run_dirs):  # relative to the runs' working folder
        assert json.loads((run_dir / "run_status.json").read_text())["status"] == "completed"
        for checkpoint in ("best.ckpt", "last.ckpt"):
            assert "state_dict" in torch.load(run_dir / "checkpoints" / checkpoint, weights_only=True)
        writers = {path.name.split(".")[-2] for path in (run_dir / "tensorboard").glob("events.*")}
        assert len(writers) == 1  # events.out.tfevents.<time>.<host>.<pid>.<n>: no other run's events mixed in
