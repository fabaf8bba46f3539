"""Apply a segmentation checkpoint to image files.

    python -m src.predict ckpt_path=PATH input=IMAGE_OR_FOLDER [output=DIR] [batch_size=8]

(conf/predict.yaml; without ``output`` the masks go into the run directory, outputs/predict/<date>/<time>.)

For each image writes <stem>_mask.png (class ids; a palette PNG, so it opens in colour) and
<stem>_overlay.png (class colours over the photo), both at the image's original size. Images are
resized as the model was trained (data.resize: squashed to data.image_size and predicted in
batches, or short side / original size one at a time), inferred by task.inference (whole, or
sliding windows for large photos), and the logits resized back before the class is chosen. A file that cannot be read is reported by name and the rest still written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich.progress import track

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.data.files import IMAGE_SUFFIXES, RESIZE_POLICIES, DatasetError, read_image, resize_by_policy
from src.data.palettes import overlay, voc_palette
from src.data.transforms import normalisation_stats, normalise
from src.exported import model_card, run_exported
from src.metrics import hard_predictions
from src.tasks.inference import Inference
from src.compose import apply_overrides, load_mask_model, register_checkpoint_config
from src.utils.log import get_logger
from src.utils.overrides import split_override
from src.utils.run import command_line, entry_point
from src.utils.atomic import save_image, writable_folder

log = get_logger(__name__)


def image_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"input={source}: a folder without images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    raise FileNotFoundError(f"input={source}: no such file or folder")


def output_stems(files: list[Path]) -> dict[Path, str]:
    """The name each input's outputs start with: its stem, or stem_suffix where two inputs share
    a stem (a.jpg and a.png), so that no output overwrites another."""
    counts: dict[str, int] = {}
    for path in files:
        counts[path.stem] = counts.get(path.stem, 0) + 1
    return {path: path.stem if counts[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}" for path in files}


def write_prediction(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, out: Path, stem: str) -> None:
    """The mask as a palette PNG (pixel values are class ids) and its overlay on the image."""
    mask_image = Image.fromarray(mask.astype(np.uint8))  # mode L; putpalette makes it P, values kept
    mask_image.putpalette(palette[:256].astype(np.uint8).flatten().tolist())
    # zlib level 1: a photo's overlay encodes ~4x faster than at Pillow's default 6, for ~20 % more bytes.
    save_image(mask_image, out / f"{stem}_mask.png", compress_level=1)
    save_image(overlay(image, mask, palette), out / f"{stem}_overlay.png", compress_level=1)


@dataclass
class Predictor:
    """What prediction needs from a model, whichever backend runs it: ``infer`` maps a normalised
    N x C x H x W batch to logits at its size; the rest says how to prepare images and read logits."""

    infer: Callable[[torch.Tensor], torch.Tensor]
    image_size: int
    in_channels: int
    resize: str
    threshold: float
    palette: np.ndarray
    device: torch.device = torch.device("cpu")
    mean: Sequence[float] | None = None  # None: seglab's default for the channel count
    std: Sequence[float] | None = None

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return normalisation_stats(self.in_channels, self.mean, self.std)


def data_palette(cfg: DictConfig) -> np.ndarray:
    """The class colours of the checkpoint's data (its datamodule's palette), VOC's if the data is not at hand."""
    try:
        return hydra.utils.instantiate(cfg.data, _convert_="all").palette
    except Exception:  # no data here: colours do not change the class ids written
        return voc_palette(max(int(cfg.data.num_classes), 2))


def torch_predictor(ckpt_path: str, overrides: Sequence[str] = ()) -> Predictor:
    cfg, task = load_mask_model(ckpt_path, overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task.to(device)
    return Predictor(task.infer, int(cfg.data.image_size), int(cfg.data.in_channels), cfg.data.get("resize", "square"),
                     task.threshold, data_palette(cfg), device, cfg.data.get("mean"), cfg.data.get("std"))  # fmt: skip


def onnx_predictor(model_path: str, overrides: Sequence[str] = ()) -> Predictor:
    """An exported model.onnx with the model.json that src.export wrote beside it, run by onnxruntime
    with the task's inference settings (whole or sliding window, TTA) as trained, or as overridden
    (task.inference.mode=slide)."""
    path = Path(model_path)
    card = path.with_name("model.json")
    info = model_card(path)
    classes, channels = len(info["classes"]), int(info["input"]["channels"])
    settings = OmegaConf.create({"inference": info.get("inference") or {}})
    foreign = [o for o in overrides if not o.startswith("task.inference.")]
    if foreign:
        raise ValueError(f"{', '.join(foreign)}: with onnx_path=<exported file>, only task.inference.* settings can be overridden")
    apply_overrides(settings, [o.removeprefix("task.") for o in overrides], f"{card}'s inference settings")
    inference = Inference(**{k: v for k, v in OmegaConf.to_container(settings.inference).items() if k != "_target_"})
    forward = run_exported(path, "onnx", channels, classes)
    size = int(info["input"]["training_size"])
    if not info["input"].get("dynamic", True):
        forward = fixed_size_checked(forward, path, size)
    palette = np.array([c["colour"] for c in info["classes"]], dtype=np.uint8)
    return Predictor(lambda batch: inference(forward, batch), size, channels,
                     info["input"]["resize"], float(info["output"]["threshold"]), palette,
                     mean=info["input"]["mean"], std=info["input"]["std"])  # fmt: skip


def fixed_size_checked(forward, path: Path, size: int):
    """``forward`` of a file exported with fixed_size=true, refusing inputs of another size by name."""

    def checked(batch: torch.Tensor) -> torch.Tensor:
        if tuple(batch.shape[-2:]) != (size, size):
            raise ValueError(f"{path}: exported at a fixed {size}x{size} (fixed_size=true), given {tuple(batch.shape[-2:])}: "
                             "predict with resize=square and whole-image inference, or export with fixed_size=false")  # fmt: skip
        return forward(batch)

    return checked


@torch.inference_mode()
def predict(
    ckpt_path: str | None,
    source: Path,
    out: Path,
    batch_size: int = 8,
    overrides: Sequence[str] = (),
    resize: str | None = None,
    onnx_path: str | None = None,
) -> dict[str, list[str]]:
    """Masks and overlays for the images at ``source``, from a checkpoint (PyTorch) or, with
    ``onnx_path``, an exported model.onnx (onnxruntime); both write the same files."""
    predictor = onnx_predictor(onnx_path, overrides) if onnx_path else torch_predictor(ckpt_path, overrides)
    resize = resize or predictor.resize
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    if len(predictor.palette) > 256:
        raise ValueError("more than 256 classes do not fit a palette PNG")
    files = image_files(source)
    stems = output_stems(files)
    writable_folder(out, "output")
    written, failed = [], []
    try:
        with signals_raise():
            predict_files(predictor, files, stems, out, batch_size, resize, written, failed)
    except Interrupted as interruption:
        left = [str(path) for path in files if str(path) not in written and str(path) not in failed]
        log.warning(
            f"Interrupted by {interruption.name} after {len(written)} of {len(files)} inputs: their masks and overlays "
            f"are whole in {out}; not done ({len(left)}): {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}"
        )
        raise SystemExit(128 + interruption.signum) from None
    log.info(f"Wrote {len(written)} masks and overlays to {out}" + (f"; {len(failed)} files unreadable: {failed}" if failed else ""))
    return {"written": written, "failed": failed}


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum, self.name = signum, signal.Signals(signum).name


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and Ctrl-C raise Interrupted between two statements, so that the loop stops with
    every file it wrote whole (each is written atomically) and can say which inputs were done."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def predict_files(predictor: Predictor, files: list[Path], stems: dict[Path, str], out: Path, batch_size: int, resize: str,
                  written: list[str], failed: list[str]) -> None:  # fmt: skip
    size, channels, device = predictor.image_size, predictor.in_channels, predictor.device
    mean, std = predictor.mean_std
    palette = predictor.palette
    for start in track(range(0, len(files), batch_size), description=f"Predicting {len(files)} images"):
        images, names = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(read_image(path, "L" if channels == 1 else "RGB"))
                names.append(path)
            except DatasetError as error:
                log.warning(f"skipped: {error}")
                failed.append(str(path))
        # Squashed images batch together; under short_side or none each keeps its own size, one at a time.
        groups = [list(zip(images, names))] if resize == "square" else [[pair] for pair in zip(images, names)]
        for group in groups:
            if not group:
                continue
            resized = np.stack([resize_by_policy(image, None, size, resize)[0] for image, _ in group])
            batch = normalise(torch.from_numpy(resized).permute(0, 3, 1, 2).to(device), mean, std)
            logits = predictor.infer(batch)
            del batch
            masks = []
            for (image, _), one in zip(group, logits):
                # Resize the logits, not the hard mask, so class borders are smooth at the original size.
                if one.shape[-2:] != image.shape[:2]:
                    one = F.interpolate(one[None].float(), size=image.shape[:2], mode="bilinear", align_corners=False)[0]
                masks.append(hard_predictions(one[None], predictor.threshold)[0].to(torch.uint8).cpu().numpy())
            del logits, one  # the logits of a large photo are gone before its pictures are drawn
            for (image, path), mask in zip(group, masks):
                write_prediction(image, mask, palette, out, stems[path])
                written.append(str(path))


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@entry_point("python -m src.predict")
def main(cfg: DictConfig) -> dict[str, list[str]]:
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {cfg.batch_size!r}")
    if bool(cfg.ckpt_path) == bool(cfg.onnx_path):
        raise ValueError("give ckpt_path=<checkpoint> (PyTorch) or onnx_path=<exported model.onnx> (onnxruntime), one of them")
    own = ("ckpt_path", "input", "output", "batch_size", "resize", "onnx_path")
    overrides = [o for o in HydraConfig.get().overrides.task if split_override(o)[0] not in own]
    out = Path(cfg.output or HydraConfig.get().runtime.output_dir)
    result = predict(cfg.ckpt_path, Path(cfg.input), out, cfg.batch_size, overrides, cfg.resize, cfg.onnx_path)
    if result["failed"] and not result["written"]:
        raise ValueError(f"input={cfg.input}: none of the {len(result['failed'])} images could be predicted (each is named above)")
    return result


if __name__ == "__main__":
    command_line(main, lambda argv: register_checkpoint_config(argv, "src.predict"))
