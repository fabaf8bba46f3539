"""Faults a long sweep must survive: interrupted writes, full disks, kills, NaNs, bad input."""

import errno

import pytest
import torch

from src.utils import checkpoint as checkpoint_module
from src.utils.checkpoint import AtomicCheckpointIO, CheckpointWriteError


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
