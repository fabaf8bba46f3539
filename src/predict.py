"""Apply a segmentation checkpoint to image files.

    python -m src.predict ckpt_path=PATH input=IMAGE_OR_FOLDER [output=DIR] [batch_size=8]

For each image writes <stem>_mask.png (class ids; a palette PNG, so it opens in colour) and
<stem>_overlay.png (class colours over the photo), both at the image's original size. Images are
resized to the model's training size, predicted in batches, and the logits resized back before
the class is chosen. A file that cannot be read is reported by name and the rest still written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import track

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.data.files import DatasetError, read_image, resize_image
from src.data.image_folder import IMAGE_SUFFIXES
from src.data.palettes import overlay, voc_palette
from src.data.transforms import normalisation_stats, normalise
from src.metrics import hard_predictions
from src.utils.checkpoint import read_run_config
from src.utils.instantiate import build_task
from src.utils.run import exit_on_bad_input


def image_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    raise FileNotFoundError(f"input={source}: no such file or folder")


def load_task(ckpt_path: str):
    """The checkpoint's task and net, weights loaded (plain data only), in eval mode."""
    cfg = read_run_config(ckpt_path)
    task = build_task(cfg)
    if not hasattr(task, "predict_masks"):
        raise ValueError(f"ckpt_path={ckpt_path}: a {type(task).__name__}; src.predict writes masks of segmentation models")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    task.load_state_dict(state["state_dict"])
    return cfg, task.eval()


def write_prediction(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, out: Path, stem: str) -> None:
    """The mask as a palette PNG (pixel values are class ids) and its overlay on the image."""
    mask_image = Image.fromarray(mask.astype(np.uint8))  # mode L; putpalette makes it P, values kept
    mask_image.putpalette(palette[:256].astype(np.uint8).flatten().tolist())
    mask_image.save(out / f"{stem}_mask.png")
    Image.fromarray(overlay(image, mask, palette)).save(out / f"{stem}_overlay.png")


@torch.inference_mode()
def predict(ckpt_path: str, source: Path, out: Path, batch_size: int = 8) -> dict[str, list[str]]:
    cfg, task = load_task(ckpt_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task.to(device)
    size, channels = int(cfg.data.image_size), int(cfg.data.in_channels)
    mean, std = normalisation_stats(channels)
    palette = voc_palette(max(int(cfg.data.num_classes), 2))
    if int(cfg.data.num_classes) > 256:
        raise ValueError("more than 256 classes do not fit a palette PNG")
    out.mkdir(parents=True, exist_ok=True)
    files = image_files(source)
    written, failed = [], []
    for start in track(range(0, len(files), batch_size), description=f"Predicting {len(files)} images"):
        images, names = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(read_image(path, "L" if channels == 1 else "RGB"))
                names.append(path)
            except DatasetError as error:
                print(f"skipped: {error}")
                failed.append(str(path))
        if not images:
            continue
        resized = np.stack([resize_image(image, size) for image in images])
        batch = normalise(torch.from_numpy(resized).permute(0, 3, 1, 2).to(device), mean, std)
        logits = task(batch)
        for image, path, one in zip(images, names, logits):
            # Resize the logits, not the hard mask, so class borders are smooth at the original size.
            full = F.interpolate(one[None].float(), size=image.shape[:2], mode="bilinear", align_corners=False)
            mask = hard_predictions(full, task.threshold)[0].cpu().numpy()
            write_prediction(image, mask, palette, out, path.stem)
            written.append(str(path))
    print(f"Wrote {len(written)} masks and overlays to {out}" + (f"; {len(failed)} files unreadable: {failed}" if failed else ""))
    return {"written": written, "failed": failed}


def main(argv: list[str] | None = None) -> dict[str, list[str]]:
    args = dict(arg.split("=", 1) for arg in (sys.argv[1:] if argv is None else argv) if "=" in arg)
    unknown = set(args) - {"ckpt_path", "input", "output", "batch_size"}
    if "ckpt_path" not in args or "input" not in args or unknown:
        sys.exit("usage: python -m src.predict ckpt_path=PATH input=IMAGE_OR_FOLDER [output=DIR] [batch_size=8]"
                 + (f"\nunknown arguments: {sorted(unknown)}" if unknown else ""))  # fmt: skip
    out = Path(args.get("output") or time.strftime("outputs/predict/%Y-%m-%d/%H-%M-%S"))
    result = predict(args["ckpt_path"], Path(args["input"]), out, int(args.get("batch_size", 8)))
    if result["failed"] and not result["written"]:
        sys.exit(1)
    return result


if __name__ == "__main__":
    with exit_on_bad_input("python -m src.predict"):
        main()
