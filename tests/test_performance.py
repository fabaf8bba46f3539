"""Settings chosen for speed: precision=auto and the channels_last memory format."""

import functools

import pytest
import torch

from src.losses import CrossEntropyLoss
from src.models.resnet_unet import ResNetUNet
from src.tasks.segmentation import SegmentationTask
from src.utils import hardware
from src.utils.hardware import auto_precision


@pytest.mark.parametrize("gpu, fast_bf16, expected", [(True, True, "bf16-mixed"), (True, False, "32-true"), (False, True, "32-true")])
def test_auto_precision_is_bf16_only_on_a_gpu_that_runs_it_fast(monkeypatch, gpu, fast_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(hardware, "bf16_supported", lambda accelerator: fast_bf16)
    precision, why = auto_precision("auto", "auto")
    assert precision == expected and why.startswith("auto:")


@pytest.mark.parametrize("configured", ["32-true", "16-mixed", "bf16-mixed", 32])
def test_an_explicit_precision_is_kept(monkeypatch, configured):
    monkeypatch.setattr(hardware, "bf16_supported", lambda accelerator: True)
    assert auto_precision(configured, "auto") == (str(configured), "as configured")


def test_cpu_bf16_support_follows_onednn(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for supported in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: supported)
        assert hardware.bf16_supported("cpu") is supported
        assert hardware.bf16_supported("auto") is supported


def task_with(channels_last: bool) -> SegmentationTask:
    torch.manual_seed(0)
    net = ResNetUNet(in_channels=3, num_classes=3, decoder_channels=[8, 8, 8, 8], bridge_channels=16)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return SegmentationTask(net, CrossEntropyLoss(), optimizer, num_classes=3, channels_last=channels_last)


def test_channels_last_converts_the_net_and_gives_the_same_outputs():
    nhwc, nchw = task_with(True).eval(), task_with(False).eval()
    conv_weights = [p for p in nhwc.net.parameters() if p.dim() == 4]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in nchw.net.parameters() if p.dim() == 4)
    images = torch.randn(2, 3, 64, 64)  # NCHW from the loader, as always
    with torch.no_grad():
        out_nhwc, out_nchw = nhwc(images), nchw(images)
    assert out_nhwc.shape == out_nchw.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out_nhwc, out_nchw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "cpus, processes, on_gpu, expected",
    [(2, 1, False, 1), (16, 1, False, 8), (16, 1, True, 8), (8, 1, True, 7), (16, 4, True, 3), (1, 1, True, 1)],
)
def test_auto_loader_workers_share_the_usable_cores(monkeypatch, cpus, processes, on_gpu, expected):
    monkeypatch.setattr(hardware, "usable_cpus", lambda: cpus)
    assert hardware.loader_workers("auto", processes, on_gpu) == expected
    assert hardware.loader_workers(3, processes, on_gpu) == 3  # a number is kept


@pytest.mark.parametrize("bad", [-1, "four", 1.5])
def test_a_bad_worker_count_names_the_key(bad):
    from src.data.shapes import ShapesDataModule

    with pytest.raises(ValueError, match=r"data.num_workers must be 'auto' or a whole number >= 0"):
        ShapesDataModule(num_classes=2, num_train=4, num_val=4, num_test=4, num_workers=bad)


def test_loaders_pin_memory_only_for_a_gpu_and_keep_workers_when_asked(monkeypatch):
    from src.data.shapes import ShapesDataModule

    monkeypatch.setattr(hardware, "usable_cpus", lambda: 4)
    datamodule = ShapesDataModule(num_classes=2, num_train=8, num_val=4, num_test=4, image_size=32, num_workers="auto")
    loader = datamodule.train_dataloader()  # no trainer: a CPU machine here
    assert (loader.num_workers, loader.persistent_workers, loader.pin_memory) == (2, True, False)
    datamodule = ShapesDataModule(num_classes=2, num_train=8, num_val=4, num_test=4, image_size=32, num_workers=2, persistent_workers=False)
    assert datamodule.val_dataloader().persistent_workers is False


def test_the_progress_bar_reads_logged_values_every_n_steps_not_every_step(monkeypatch):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import RichProgressBar

    from src.callbacks.progress import ProgressBar

    reads = []
    monkeypatch.setattr(RichProgressBar, "get_metrics", lambda self, trainer, module: reads.append(trainer.global_step) or {"train/loss_step": trainer.global_step})
    bar = ProgressBar()
    trainer = SimpleNamespace(training=True, is_last_batch=False, log_every_n_steps=10, global_step=0)
    shown = []
    for step in range(1, 26):
        trainer.global_step = step
        shown.append(bar.get_metrics(trainer, None)["train/loss"])
    assert reads == [1, 10, 20] and shown[-1] == 20  # the first batch, then every 10th
    trainer.is_last_batch = True  # the epoch's end: fresh values
    assert bar.get_metrics(trainer, None) == {"train/loss": 25}
    trainer.is_last_batch, trainer.training = False, False  # validation: fresh values
    assert bar.get_metrics(trainer, None) == {"train/loss": 25} and len(reads) == 5


@pytest.mark.slow  # two tiny trainings (seglab's entry and the plain loop) in a subprocess
def test_the_overhead_bench_times_both_loops_on_the_same_net(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    bench = subprocess.run([sys.executable, str(ROOT / "bench" / "overhead.py"), "--model", "resnet34_unet", "--size", "32", "--batch", "2",
                            "--train-batches", "3", "--val-batches", "1", "--epochs", "2", "--repeats", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-3000:]
    row = json.loads(bench.stdout.strip().splitlines()[-1])
    # One timed epoch each (the first is the warm-up), and the ratio is of their medians.
    assert len(row["epochs"]["seglab"]) == len(row["epochs"]["plain"]) == 1
    assert row["ratio"] == pytest.approx(row["seglab_s_per_epoch"] / row["plain_s_per_epoch"], abs=1e-3)
