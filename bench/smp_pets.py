"""smp's Unet on ResNet34 beside seglab's own resnet34_unet on Oxford-IIIT Pet, same settings.

    python bench/smp_pets.py [--root ../shared/data/pets] [--epochs 8] [--size 128] [--batch 8]

Both train from scratch with the same data, epochs, batch, size, optimizer, schedule and seed
(bench/resolution.py's runner, data.resize=square), scored at the original resolution. Training
images/s of the two nets: python bench/throughput.py --model smp / --model resnet34_unet.
Prints a table and one JSON line.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from resolution import pets_arguments, report, run  # noqa: E402

MODELS = {"resnet34_unet (seglab)": ["model=resnet34_unet"], "smp Unet resnet34": ["model=smp", "model.arch=Unet", "model.encoder=resnet34"]}


def main() -> None:
    args = pets_arguments(__doc__)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, *rest) in MODELS.items():
            results[name] = run(name.split()[0], args, Path(folder) / name.split()[0], setting=["data.resize=square", *rest], model=model)
    report("smp_pets", "model", results, args)


if __name__ == "__main__":
    main()
