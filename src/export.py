"""Export a checkpoint's net for inference elsewhere, with the sidecar inference needs.

    python -m src.export ckpt_path=outputs/.../checkpoints/best.ckpt [format=onnx|torchscript] [output=DIR]

``onnx`` (torch.onnx's dynamo exporter, opset 18) keeps batch, height and width dynamic: the nets
pad to their size multiple inside the graph (timm's TensorFlow-style "same" padding, of ``tf_``
encoders such as EfficientNet-Lite0, is exported as the fixed padding it then always is:
static_same_padding). ``fixed_size=true`` fixes height and width at the training size.
``torchscript`` traces at the training size. Beside the model, ``model.json`` says what inference needs whatever the backend: classes and colours,
input channels, mean/std, the size multiple, the head convention (1 channel: sigmoid and
threshold; K: softmax/argmax), the resize policy and the task's inference settings. The exported
file is run on a real input of the training data (random pixels if the data is not at hand) at two
sizes and compared with the PyTorch net before anything is reported as done: logits within the
tolerance, and the same class at every pixel but near ties (float32 rounding may break those).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.data.palettes import voc_palette
from src.data.transforms import normalisation_stats
from src.metrics import hard_predictions, threshold_logit
from src.compose import load_mask_model
from src.utils.log import get_logger
from src.exported import run_exported
from src.utils.run import command_line, entry_point
from src.utils.atomic import replacing, writable_folder, write_text

log = get_logger(__name__)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}


def static_same_padding(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` whose timm ``Conv2dSame`` layers (TensorFlow "same" padding: the amount
    computed from each input's size) pad by a fixed amount. On inputs divisible by the layer's
    stride, as inside a net that pads to its size multiple, "same" padding does not depend on the
    size; computed per size, it made the exporter solve symbolic size arithmetic for every such
    layer (EfficientNet-Lite0: not done in 15 minutes; fixed, it exports in about 20 s). The export
    check compares the copy's file with the original net, at an odd size too. A net without such
    layers is returned as it is (no copy; timm is not imported for it)."""
    import copy

    timm_layers = sys.modules.get("timm.layers")  # a net holding timm's layers imported timm to build them
    if timm_layers is None or not any(isinstance(m, timm_layers.Conv2dSame) for m in net.modules()):
        return net
    from timm.layers.padding import pad_same_arg

    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, layer in list(parent.named_children()):
            if isinstance(layer, timm_layers.Conv2dSame):
                plain = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, 0,
                                        layer.dilation, layer.groups, layer.bias is not None)  # fmt: skip
                plain.weight, plain.bias = layer.weight, layer.bias
                padding = pad_same_arg(list(layer.stride), list(layer.kernel_size), list(layer.stride), list(layer.dilation))
                setattr(parent, name, torch.nn.Sequential(torch.nn.ZeroPad2d(padding), plain))
    return net


def test_data(cfg: DictConfig, required: bool):
    """The run's datamodule, set up for its test split; None where its data is not at hand and
    not ``required`` (quantisation needs it: its error is raised as it comes)."""
    try:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        datamodule.setup("test")
        return datamodule
    except Exception as error:
        if required:
            raise
        log.info(f"No test image at hand ({type(error).__name__}: {error}); checking on random pixels")
        return None


def sample_input(cfg: DictConfig, datamodule, size: int) -> tuple[torch.Tensor, str, np.ndarray]:
    """A normalised 1 x C x size x size test image of the training data (random pixels without the
    data), and the data's class colours."""
    if datamodule is None:
        return torch.randn(1, int(cfg.data.in_channels), size, size), "random pixels", voc_palette(max(int(cfg.data.num_classes), 2))
    item = datamodule.datasets["test"][0]
    image = torch.nn.functional.interpolate(item["image"][None].float(), size=(size, size), mode="bilinear", align_corners=False)
    return image, f"test image {item['name']!r}", datamodule.palette


def sidecar(cfg: DictConfig, task, fmt: str, file: str, multiple: int, num_outputs: int, palette: np.ndarray, dynamic: bool) -> dict:
    channels = int(cfg.data.in_channels)
    mean, std = normalisation_stats(channels, cfg.data.get("mean"), cfg.data.get("std"))
    return {
        "format": fmt,
        "file": file,
        "input": {"name": "image", "channels": channels, "layout": "NCHW float32", "mean": list(mean), "std": list(std),
                  "scale": "pixel / 255, then (x - mean) / std", "size_multiple": multiple,
                  "dynamic": dynamic, "training_size": int(cfg.data.image_size),
                  "resize": cfg.data.get("resize", "square")},  # fmt: skip
        "output": {"name": "logits", "channels": num_outputs,
                   "head": "sigmoid: class 1 where logit > log(threshold / (1 - threshold))" if num_outputs == 1 else "softmax: argmax over channels",
                   "threshold": float(task.threshold)},  # fmt: skip
        "classes": [{"id": k, "name": name, "colour": [int(c) for c in palette[k]]} for k, name in enumerate(task.class_names)],
        "ignore_index": int(cfg.data.ignore_index),
        "inference": OmegaConf.to_container(cfg.task.get("inference", {}), resolve=True),
    }


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def mask_differences(reference: torch.Tensor, logits: torch.Tensor, threshold: float, difference: float) -> tuple[int, int]:
    """Mask pixels whose class differs: (those the logit difference cannot explain, near ties).
    A pixel whose two best logits (or whose logit and the threshold's) lie within twice the largest
    logit difference of each other is a tie that float32 rounding may break either way."""
    differ = hard_predictions(reference, threshold) != hard_predictions(logits, threshold)
    if not differ.any():
        return 0, 0
    if reference.shape[1] == 1:
        margin = (reference[:, 0] - threshold_logit(threshold)).abs()
    else:
        best_two = reference.topk(2, dim=1).values
        margin = best_two[:, 0] - best_two[:, 1]
    ties = differ & (margin <= 2 * difference)
    return int((differ & ~ties).sum()), int(ties.sum())


@torch.no_grad()
def export(ckpt_path: str, fmt: str, out: Path, tolerance: float = 1e-3, quantize: str | None = None,
           calibration_images: int = 200, max_score_drop: float = 0.01, seed: int = 0, fixed_size: bool = False,
           reduce_range: bool = True) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if quantize not in (None, "int8") or (quantize and fmt != "onnx"):
        raise ValueError(f"quantize must be null or int8 (with format=onnx), got {quantize!r}")
    cfg, task = load_mask_model(ckpt_path)
    net = task.net.to("cpu", memory_format=torch.contiguous_format).eval()
    size = int(cfg.data.image_size)
    multiple = int(getattr(net, "size_multiple", 1))
    datamodule = test_data(cfg, required=bool(quantize))  # built once: the check's image, calibration and the INT8 check
    example, source, palette = sample_input(cfg, datamodule, size)
    writable_folder(out, "output")
    path = out / FORMATS[fmt]
    # Written under a temporary name and renamed only once checked: a failed export leaves no model file.
    with replacing(path) as written:
        if fmt == "onnx":
            dims = {0: torch.export.Dim("batch")} | ({} if fixed_size else {2: torch.export.Dim("height"), 3: torch.export.Dim("width")})
            torch.onnx.export(static_same_padding(net), (example,), str(written), dynamo=True, input_names=["image"], output_names=["logits"],
                              dynamic_shapes=(dims,), external_data=False, verbose=False)  # fmt: skip
            # A second, odd size: dynamic shapes at work.
            sizes = [(size, size)] + ([] if fixed_size else [(size + multiple + 3, size - multiple + 5)])
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
            flipped, ties = mask_differences(reference, logits, task.threshold, difference)
            same_masks = flipped == ties == 0
            checked.append({"size": [height, width], "max_abs_diff": difference, "same_masks": same_masks, "near_tie_pixels": ties})
            worst = max(worst, difference)
            if difference > tolerance * scale or flipped:
                raise ValueError(
                    f"the exported {path.name} does not reproduce the PyTorch net at {height}x{width}: largest logit difference "
                    f"{difference:.2e} (tolerance {tolerance:g} x logits up to {scale:.3g}), "
                    + (f"{flipped} mask pixels differ away from a near tie" if flipped else "masks equal")
                )
        quantized = quantize and quantize_checked(cfg, task, datamodule, written, calibration_images, max_score_drop, seed, reduce_range)
    info = sidecar(cfg, task, fmt, path.name, multiple, int(reference.shape[1]), palette, fmt == "onnx" and not fixed_size)
    info["checked"] = {"on": source, "runs": checked}
    if quantized:
        info["quantization"] = quantized
    info["run_config"] = OmegaConf.to_container(cfg, resolve=True)  # src.eval onnx_path= rebuilds the data and task from it
    info["checkpoint"] = str(ckpt_path)
    info["exported_with"] = library_versions()  # int8 and opset behaviour change between releases
    write_text(out / "model.json", json.dumps(info, indent=2) + "\n")
    ties = sum(run["near_tie_pixels"] for run in checked)
    log.info(f"Exported {path} ({path.stat().st_size / 2**20:.1f} MB) and model.json; checked on {source} at "
             + ", ".join(f"{h}x{w}" for h, w in sizes) + f": largest logit difference {worst:.2e}, masks "
             + (f"identical but for {ties} near-tie pixels" if ties else "identical"))  # fmt: skip
    return info


def quantize_checked(cfg: DictConfig, task, datamodule, onnx_file: Path, count: int, max_score_drop: float, seed: int, reduce_range: bool) -> dict:
    """``onnx_file`` (fp32, checked) replaced by its INT8 quantisation, calibrated on ``count`` training
    images and checked against the fp32 net on the test split (src.quantize)."""
    import tempfile

    from src.quantize import calibration_images, check_int8, quantize_int8

    with tempfile.TemporaryDirectory() as scratch:
        int8_file = Path(scratch) / "int8.onnx"
        how = quantize_int8(onnx_file, int8_file, calibration_images(datamodule, count, seed), reduce_range)
        check = check_int8(cfg, task, int8_file, datamodule, max_score_drop)
        int8_file.replace(onnx_file)
    return {**how, "check": check}


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@entry_point("python -m src.export")
def main(cfg: DictConfig) -> dict:
    return export(cfg.ckpt_path, cfg.format, Path(cfg.output or HydraConfig.get().runtime.output_dir), float(cfg.tolerance),
                  cfg.quantize, int(cfg.calibration_images), float(cfg.max_score_drop), int(cfg.seed), bool(cfg.fixed_size),
                  bool(cfg.reduce_range))  # fmt: skip


if __name__ == "__main__":
    command_line(main)
