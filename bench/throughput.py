"""Training and inference images/s of one model at one size, in each numeric setting.

    python bench/throughput.py [--model resnet34_unet] [--size 256] [--batch 8] [--steps 6]

Settings: fp32 in PyTorch's default memory format (NCHW), fp32 channels_last, bf16 autocast
(CPU autocast on a CPU, CUDA autocast on a GPU) with channels_last, and the default config
(task.channels_last=true, trainer.precision=auto as resolved on this machine). Each training step
is forward, loss, backward and an Adam step on random data; inference is a no-grad forward.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from hydra import compose, initialize_config_dir
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.utils.hardware import auto_precision, device_description  # noqa: E402
from src.compose import build_net  # noqa: E402


def build(model: str, num_classes: int) -> torch.nn.Module:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("summary", overrides=[f"model={model}", f"data.num_classes={num_classes}", "data.in_channels=3"])
    return build_net(cfg.model)  # model configs may extend others (resnet34_unet: resnet_unet)


def measure(net, images, masks, device, channels_last: bool, bf16: bool, steps: int) -> tuple[float, float]:
    """(training images/s, inference images/s), after one warm-up step each."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device, memory_format=fmt)
    images = images.to(device).contiguous(memory_format=fmt)
    masks = masks.to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def train_step():
        with autocast():
            loss = torch.nn.functional.cross_entropy(net(images).float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), autocast():
            net(images)

    rates = []
    for step in (train_step, infer_step):
        net.train(step is train_step)
        step()
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * len(images) / (time.perf_counter() - started))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet34_unet")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--skip-slow-bf16", action="store_true", help="leave out bf16 where the hardware emulates it")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size)
    masks = torch.randint(0, args.num_classes, (args.batch, args.size, args.size))
    precision, why = auto_precision("auto", device.type)
    settings = {
        "fp32 NCHW": (False, False),
        "fp32 channels_last": (True, False),
        "bf16 channels_last": (True, True),
        f"default ({precision}, channels_last)": (True, precision == "bf16-mixed"),
    }
    if args.skip_slow_bf16 and precision != "bf16-mixed":
        settings.pop("bf16 channels_last")
    results = {}
    for name, (channels_last, bf16) in settings.items():
        torch.manual_seed(0)
        net = build(args.model, args.num_classes)
        results[name] = measure(net, images, masks, device, channels_last, bf16, args.steps)
    base = results["fp32 NCHW"][0]
    where = device_description()
    print(f"{args.model} {args.size}x{args.size}, batch {args.batch}, {args.steps} steps, on {where}; precision=auto -> {precision} ({why})")
    print(f"{'setting':38s} {'train img/s':>12s} {'vs fp32':>8s} {'infer img/s':>12s}")
    for name, (train, infer) in results.items():
        print(f"{name:38s} {train:12.2f} {train / base:7.2f}x {infer:12.2f}")
    print(json.dumps({"bench": "throughput", "date": str(date.today()), "device": where, "model": args.model,
                      "size": args.size, "batch": args.batch, "auto_precision": precision,
                      "results": {name: {"train_img_s": round(t, 3), "infer_img_s": round(i, 3)} for name, (t, i) in results.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
