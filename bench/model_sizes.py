"""Parameters and GMACs of every model config at 256x256: the README's model table.

    python bench/model_sizes.py [--size 256]

Segmentation nets with K=21 classes on RGB, colourisation nets with 24 colours on grey input,
the classifier with 50 classes. MACs from torch's flop counter (FLOPs / 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.models.summary import summarise  # noqa: E402
from src.compose import build_net  # noqa: E402

MODELS = {  # name: (num_classes, in_channels)
    "unet": (21, 3),
    "unet_bilinear": (21, 3),
    "unet_original": (21, 3),
    "resnet34_unet": (21, 3),
    "resnet50_unet": (21, 3),
    "fcn32s": (21, 3),
    "fcn8s": (21, 3),
    "deeplabv3": (21, 3),
    "smp": (21, 3),
    "deeplabv3plus": (21, 3),
    "unetplusplus": (21, 3),
    "fpn": (21, 3),
    "segformer": (21, 3),
    "pool_upsample_net": (24, 1),
    "conv_transpose_net": (24, 1),
    "colour_unet": (24, 1),
    "resnet50_classifier": (50, 3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    print(f"| model | K | input | parameters | GMACs at {args.size}x{args.size} |")
    print("|---|---:|---|---:|---:|")
    results = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name, (classes, channels) in MODELS.items():
            cfg = compose("summary", overrides=[f"model={name}", f"data.num_classes={classes}", f"data.in_channels={channels}"])
            summary = summarise(build_net(cfg.model), (1, channels, args.size, args.size), depth=1)
            results[name] = {"parameters": summary.parameters, "gmacs": round(summary.macs / 1e9, 3)}
            print(f"| `{name}` | {classes} | {channels}x{args.size}x{args.size} | {summary.parameters / 1e6:.2f} M | {summary.macs / 1e9:.2f} |")
    print(json.dumps({"benchmark": "model_sizes", "size": args.size, "models": results}))


if __name__ == "__main__":
    main()
