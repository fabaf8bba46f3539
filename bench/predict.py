"""Images/s of src.predict's inference on the same photos: eager PyTorch fp32 (NCHW), eager
channels_last, and onnxruntime running the exported file.

    python bench/predict.py [--model resnet34_unet] [--size 256] [--batch 8] [--images ../shared/data/pets/images]

The photos are read and resized once (as src.predict does: squashed to size x size, normalised);
each backend then runs the net on the same batches: one warm-up pass, then the median of three
timed passes. The weights are random (they do not change the speed). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data.files import read_image, resize_image  # noqa: E402
from src.data.transforms import normalise  # noqa: E402
from src.utils.hardware import device_description  # noqa: E402
from src.compose import build_net  # noqa: E402


def timed(run, batches: list[torch.Tensor]) -> float:
    """Images/s: one warm-up pass over the batches, then the median of three passes."""
    run(batches[0])
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        seconds.append(time.perf_counter() - started)
    return sum(len(b) for b in batches) / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet34_unet")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--count", type=int, default=32, help="photos used")
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "pets" / "images"))
    args = parser.parse_args()
    import onnxruntime

    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # the exporter's optimiser names each merged initializer
    paths = sorted(Path(args.images).glob("*.jpg"))[: args.count]
    if not paths:
        sys.exit(f"no .jpg photos in {args.images}")
    pixels = np.stack([resize_image(read_image(p), args.size) for p in paths])
    images = normalise(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    batches = list(images.split(args.batch))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("summary", overrides=[f"model={args.model}", "data.num_classes=2", "data.in_channels=3"])
    torch.manual_seed(0)
    net = build_net(cfg.model).eval()
    results = {}
    with torch.inference_mode():
        results["eager fp32 NCHW"] = timed(net, batches)
        net_cl = net.to(memory_format=torch.channels_last)
        results["eager fp32 channels_last"] = timed(lambda b: net_cl(b.contiguous(memory_format=torch.channels_last)), batches)
        net = net.to(memory_format=torch.contiguous_format)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        torch.onnx.export(net, (batches[0],), str(path), dynamo=True, input_names=["image"], dynamic_shapes=(dims,), external_data=False)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results["onnxruntime"] = timed(lambda b: session.run(None, {"image": b.numpy()}), batches)
    base = results["eager fp32 NCHW"]
    print(f"{args.model}, {len(paths)} photos from {args.images} at {args.size}x{args.size}, batch {args.batch}; {device_description()}; "
          f"torch threads {torch.get_num_threads()}, onnxruntime {onnxruntime.__version__}")  # fmt: skip
    print("| backend | images/s | vs eager fp32 |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.2f}x |")
    print(json.dumps({"benchmark": "predict", "model": args.model, "size": args.size, "batch": args.batch,
                      "images_per_s": {k: round(v, 3) for k, v in results.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
