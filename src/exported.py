"""Running an exported model (ONNX by onnxruntime, TorchScript) as a function of a batch."""

from __future__ import annotations

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
