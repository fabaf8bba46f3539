"""Running an exported model (ONNX by onnxruntime, TorchScript) as a function of a batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def run_exported(path: Path, fmt: str, channels: int | None = None, classes: int | None = None):
    """A function from a normalised NCHW tensor to logits, running the exported file. An ONNX file
    that onnxruntime cannot load, or whose input channels or output classes disagree with what
    model.json says (``channels``, ``classes``), is refused in one line naming the file."""
    if fmt == "onnx":
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf classes
            reason = " ".join(str(error).split())[:200]
            raise ValueError(f"{path}: onnxruntime cannot load this file ({reason}); it may be truncated: export it again") from None
        name = session.get_inputs()[0].name
        in_found, out_found = session.get_inputs()[0].shape[1], session.get_outputs()[0].shape[1]
        wrong = []
        if channels is not None and isinstance(in_found, int) and in_found != channels:
            wrong.append(f"{in_found} input channels in the file, {channels} in model.json")
        if classes is not None and isinstance(out_found, int) and out_found not in ({1, 2} if classes == 2 else {classes}):
            wrong.append(f"{out_found} output channels in the file, {classes} classes in model.json")
        if wrong:
            raise ValueError(f"{path}: does not match the model.json beside it ({'; '.join(wrong)}); export the checkpoint again")
        return lambda images: torch.from_numpy(session.run(None, {name: images.contiguous().cpu().numpy().astype(np.float32)})[0])
    module = torch.jit.load(str(path), map_location="cpu")
    return lambda images: module(images.cpu())


def model_card(model_path: str | Path, key: str = "onnx_path") -> dict:
    """The model.json that src.export wrote beside an exported file."""
    path = Path(model_path).expanduser()
    card = path.with_name("model.json")
    if not path.is_file() or not card.is_file():
        raise FileNotFoundError(f"{key}={model_path}: needs the exported file and its model.json beside it (python -m src.export)")
    try:
        info = json.loads(card.read_text())
        len(info["classes"]), int(info["input"]["channels"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{card}: not a model.json written by src.export ({error}); export the checkpoint again") from None
    return info


class ExportedNet(torch.nn.Module):
    """An exported ONNX file as a net: normalised NCHW images in, logits out (on the input's
    device), so that a task's test loop, metrics and pictures run on what will be shipped."""

    def __init__(self, path: str | Path, channels: int | None = None, classes: int | None = None, size_multiple: int = 1):
        super().__init__()
        self.forward_exported = run_exported(Path(path), "onnx", channels, classes)
        self.size_multiple = size_multiple  # the graph pads to it itself; said for the inference code

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_exported(images.float()).to(images.device)
