"""Export a checkpoint's net for inference elsewhere, with the sidecar inference needs.

    python -m src.export ckpt_path=outputs/.../checkpoints/best.ckpt [format=onnx|torchscript] [output=DIR]

``onnx`` (torch.onnx's dynamo exporter, opset 18) keeps batch, height and width dynamic: the nets
pad to their size multiple inside the graph. ``torchscript`` traces at the training size. Beside
the model, ``model.json`` says what inference needs whatever the backend: classes and colours,
input channels, mean/std, the size multiple, the head convention (1 channel: sigmoid and
threshold; K: softmax/argmax), the resize policy and the task's inference settings. The exported
file is run on a real input of the training data (random pixels if the data is not at hand) at two
sizes and compared with the PyTorch net before anything is reported as done.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.data.palettes import voc_palette
from src.data.transforms import normalisation_stats
from src.metrics import hard_predictions
from src.compose import load_mask_model
from src.utils.log import get_logger
from src.exported import run_exported
from src.utils.run import command_line, entry_point
from src.utils.atomic import replacing, writable_folder, write_text

log = get_logger(__name__)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}


def sample_input(cfg: DictConfig, size: int) -> tuple[torch.Tensor, str, np.ndarray]:
    """A normalised 1 x C x size x size test image of the training data (or random pixels, if the
    data is not at hand), and the data's class colours."""
    try:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        datamodule.setup("test")
        item = datamodule.datasets["test"][0]
        image = torch.nn.functional.interpolate(item["image"][None].float(), size=(size, size), mode="bilinear", align_corners=False)
        return image, f"test image {item['name']!r}", datamodule.palette
    except Exception as error:  # no data here: the check still runs, on noise
        log.info(f"No test image at hand ({type(error).__name__}: {error}); checking on random pixels")
        return torch.randn(1, int(cfg.data.in_channels), size, size), "random pixels", voc_palette(max(int(cfg.data.num_classes), 2))


def sidecar(cfg: DictConfig, task, fmt: str, file: str, multiple: int, num_outputs: int, palette: np.ndarray) -> dict:
    channels = int(cfg.data.in_channels)
    mean, std = normalisation_stats(channels, cfg.data.get("mean"), cfg.data.get("std"))
    return {
        "format": fmt,
        "file": file,
        "input": {"name": "image", "channels": channels, "layout": "NCHW float32", "mean": list(mean), "std": list(std),
                  "scale": "pixel / 255, then (x - mean) / std", "size_multiple": multiple,
                  "dynamic": fmt == "onnx", "training_size": int(cfg.data.image_size),
                  "resize": cfg.data.get("resize", "square")},  # fmt: skip
        "output": {"name": "logits", "channels": num_outputs,
                   "head": "sigmoid: class 1 where logit > log(threshold / (1 - threshold))" if num_outputs == 1 else "softmax: argmax over channels",
                   "threshold": float(task.threshold)},  # fmt: skip
        "classes": [{"id": k, "name": name, "colour": [int(c) for c in palette[k]]} for k, name in enumerate(task.class_names)],
        "ignore_index": int(cfg.data.ignore_index),
        "inference": OmegaConf.to_container(cfg.task.get("inference", {}), resolve=True),
    }


@torch.no_grad()
def export(ckpt_path: str, fmt: str, out: Path, tolerance: float = 1e-3, quantize: str | None = None,
           calibration_images: int = 200, max_score_drop: float = 0.01, seed: int = 0) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if quantize not in (None, "int8") or (quantize and fmt != "onnx"):
        raise ValueError(f"quantize must be null or int8 (with format=onnx), got {quantize!r}")
    cfg, task = load_mask_model(ckpt_path)
    net = task.net.to("cpu", memory_format=torch.contiguous_format).eval()
    size = int(cfg.data.image_size)
    multiple = int(getattr(net, "size_multiple", 1))
    example, source, palette = sample_input(cfg, size)
    writable_folder(out, "output")
    path = out / FORMATS[fmt]
    # Written under a temporary name and renamed only once checked: a failed export leaves no model file.
    with replacing(path) as written:
        if fmt == "onnx":
            dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
            torch.onnx.export(net, (example,), str(written), dynamo=True, input_names=["image"], output_names=["logits"],
                              dynamic_shapes=({k: v for k, v in dims.items()},), external_data=False, verbose=False)  # fmt: skip
            sizes = [(size, size), (size + multiple + 3, size - multiple + 5)]  # a second, odd size: dynamic shapes at work
        else:
            torch.jit.trace(net, example).save(str(written))
            sizes = [(size, size)]
        exported = run_exported(written, fmt)
        worst, checked = 0.0, []
        for height, width in sizes:
            images = torch.nn.functional.interpolate(example, size=(height, width), mode="bilinear", align_corners=False).repeat(2, 1, 1, 1)
            reference, logits = net(images), exported(images)
            difference = float((reference - logits).abs().max())
            scale = max(1.0, float(reference.abs().max()))  # float32 rounding grows with the logits' size
            same_masks = torch.equal(hard_predictions(reference, task.threshold), hard_predictions(logits, task.threshold))
            checked.append({"size": [height, width], "max_abs_diff": difference, "same_masks": same_masks})
            worst = max(worst, difference)
            if difference > tolerance * scale or not same_masks:
                raise ValueError(
                    f"the exported {path.name} does not reproduce the PyTorch net at {height}x{width}: largest logit difference "
                    f"{difference:.2e} (tolerance {tolerance:g} x logits up to {scale:.3g}), "
                    f"masks {'equal' if same_masks else 'differ'}"
                )
        quantized = quantize and quantize_checked(cfg, task, written, calibration_images, max_score_drop, seed)
    info = sidecar(cfg, task, fmt, path.name, multiple, int(reference.shape[1]), palette)
    info["checked"] = {"on": source, "runs": checked}
    if quantized:
        info["quantization"] = quantized
    info["run_config"] = OmegaConf.to_container(cfg, resolve=True)  # src.eval onnx_path= rebuilds the data and task from it
    info["checkpoint"] = str(ckpt_path)
    write_text(out / "model.json", json.dumps(info, indent=2) + "\n")
    log.info(f"Exported {path} ({path.stat().st_size / 2**20:.1f} MB) and model.json; checked on {source} at "
             + ", ".join(f"{h}x{w}" for h, w in sizes) + f": largest logit difference {worst:.2e}, masks identical")  # fmt: skip
    return info


def quantize_checked(cfg: DictConfig, task, onnx_file: Path, count: int, max_score_drop: float, seed: int) -> dict:
    """``onnx_file`` (fp32, checked) replaced by its INT8 quantisation, calibrated on ``count`` training
    images and checked against the fp32 net on the test split (src.quantize)."""
    import tempfile

    from src.quantize import calibration_images, check_int8, quantize_int8

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    with tempfile.TemporaryDirectory() as scratch:
        int8_file = Path(scratch) / "int8.onnx"
        how = quantize_int8(onnx_file, int8_file, calibration_images(datamodule, count, seed))
        datamodule.setup("test")
        check = check_int8(cfg, task, int8_file, datamodule, max_score_drop)
        int8_file.replace(onnx_file)
    return {**how, "check": check}


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@entry_point("python -m src.export")
def main(cfg: DictConfig) -> dict:
    return export(cfg.ckpt_path, cfg.format, Path(cfg.output or HydraConfig.get().runtime.output_dir), float(cfg.tolerance),
                  cfg.quantize, int(cfg.calibration_images), float(cfg.max_score_drop), int(cfg.seed))  # fmt: skip


if __name__ == "__main__":
    command_line(main)
