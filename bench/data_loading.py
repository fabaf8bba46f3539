"""Training-loader throughput for pets: the cached path against plain per-item decoding.

    python bench/data_loading.py [--root PETS_FOLDER] [--size 256] [--workers 2] [--epochs 5] [--original-size]

Both paths use the same datamodule, aug=combine, batch size and workers; they differ only in
data.cache (true: decode + resize once into memory-mapped arrays; false: decode + resize every
item every epoch). The cache build is timed separately. Epochs alternate between the two paths
after one warm-up epoch each; the figure is the median images/s. Default data: ../shared/data/pets
(real photos, shrunk to at most 256 px on the longer side). The full dataset's photos are about
500x375 and cost the plain path more to decode: --original-size first writes a copy of the
folder with every photo scaled back up to 500 px on its longer side (JPEG quality 90, trimaps
nearest), and measures on that.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(root: Path, cache: bool, args, cache_dir: Path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=pets",
                "aug=combine",
                f"data.root={root}",
                f"data.cache={str(cache).lower()}",
                f"data.cache_dir={cache_dir}",
                f"data.image_size={args.size}",
                f"data.batch_size={args.batch_size}",
                f"data.num_workers={args.workers}",
            ],
        )
    return instantiate(cfg.data, _convert_="all")


def original_size_copy(root: Path, target: Path, longer_side: int = 500) -> Path:
    """The pets folder with photos and trimaps scaled to the original dataset's typical size."""
    from PIL import Image

    shutil.copytree(root / "annotations", target / "annotations", ignore=shutil.ignore_patterns("trimaps"))
    (target / "images").mkdir(parents=True)
    (target / "annotations" / "trimaps").mkdir(parents=True)
    for photo in sorted((root / "images").glob("*.jpg")):
        with Image.open(photo) as image:
            scale = longer_side / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            image.convert("RGB").resize(size, Image.BILINEAR).save(target / "images" / photo.name, quality=90)
        trimap = root / "annotations" / "trimaps" / f"{photo.stem}.png"
        if trimap.is_file():
            with Image.open(trimap) as mask:
                mask.resize(size, Image.NEAREST).save(target / "annotations" / "trimaps" / trimap.name)
    return target


def epoch_rate(loader) -> float:
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "pets")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--original-size", action="store_true", help="measure on photos scaled to ~500x375")
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root} not found: pass --root with an Oxford-IIIT Pet folder")

    with tempfile.TemporaryDirectory() as cache_dir:
        root = original_size_copy(args.root, Path(cache_dir) / "pets") if args.original_size else args.root
        cached = build(root, True, args, Path(cache_dir))
        start = time.perf_counter()
        cached.setup("fit")
        cache_build_s = time.perf_counter() - start
        plain = build(root, False, args, Path(cache_dir))
        plain.setup("fit")
        loaders = {"cached": cached.train_dataloader(), "plain": plain.train_dataloader()}
        for loader in loaders.values():
            epoch_rate(loader)  # warm-up: worker start, page cache
        rates = {name: [] for name in loaders}
        for _ in range(args.epochs):
            for name, loader in loaders.items():
                rates[name].append(epoch_rate(loader))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians["cached"] / medians["plain"]
    items = len(cached.datasets["train"])
    photos = "photos scaled to 500 px" if args.original_size else "photos as stored"
    print(f"pets train split ({photos}): {items} items at {args.size}x{args.size}, aug=combine, batch {args.batch_size}, "
          f"{args.workers} workers, {args.epochs} epochs each after a warm-up")  # fmt: skip
    print(f"  cache build (once):   {cache_build_s:8.2f} s")
    print(f"  cached path:          {medians['cached']:8.1f} images/s")
    print(f"  plain decode+resize:  {medians['plain']:8.1f} images/s")
    print(f"  ratio cached/plain:   {ratio:8.2f}x")
    print(json.dumps({
        "benchmark": "data_loading", "original_size": args.original_size, "size": args.size, "batch_size": args.batch_size, "workers": args.workers,
        "items": items, "cache_build_s": round(cache_build_s, 3),
        "cached_images_per_s": round(medians["cached"], 1), "plain_images_per_s": round(medians["plain"], 1),
        "ratio": round(ratio, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
