"""smp's Unet on ResNet34 beside seglab's own resnet34_unet on Oxford-IIIT Pet, same settings.

    python bench/smp_pets.py [--root ../shared/data/pets] [--epochs 8] [--size 128] [--batch 8]

Both train from scratch with the same data, epochs, batch, size, optimizer, schedule and seed
(bench/resolution.py's runner, data.resize=square), scored at the original resolution. Training
images/s of the two nets: python bench/throughput.py --model smp / --model resnet34_unet.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from resolution import run  # noqa: E402

from src.utils.log import configure_console_logging  # noqa: E402

MODELS = {"resnet34_unet (seglab)": ["model=resnet34_unet"], "smp Unet resnet34": ["model=smp", "model.arch=Unet", "model.encoder=resnet34"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "pets"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    configure_console_logging()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, *rest) in MODELS.items():
            results[name] = run(name.split()[0], args, Path(folder) / name.split()[0], setting=["data.resize=square", *rest], model=model)
    print(f"pets at {args.root}, {args.epochs} epochs, batch {args.batch}, {args.size} px, scored at the original resolution")
    print("| model | test Dice | test Dice per image | test mIoU | wall time (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['test_dice']:.4f} | {r['test_dice_per_image']:.4f} | {r['test_miou']:.4f} | {r['wall_s']:.0f} |")
    print(json.dumps({"benchmark": "smp_pets", "epochs": args.epochs, "size": args.size, "batch": args.batch, "results": results}))


if __name__ == "__main__":
    main()
