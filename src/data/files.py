"""Image and mask files: reading them with errors that name the file, resizing, and list helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

# Refuse decompression bombs with a clear error instead of exhausting memory.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


# The image files every reader takes (matched ignoring case): datasets, image folders, src.predict.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A problem with one file of a dataset; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path


HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit and 32-bit grey images


def to_8_bit(image: Image.Image) -> Image.Image:
    """A 16/32-bit grey image as 8-bit grey, its full range scaled to 0..255 (65535 -> 255; float
    images in 0..1 likewise), as satellite and medical data are stored. Pillow's own conversion
    clips every value above 255, turning most such images white."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and values.size and values.max() <= 1.0:
        values = values * 255.0
    elif values.size and values.max() > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), mode="L")


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Any image file as H x W x C uint8 (grey, palette and alpha images converted to ``mode``;
    16-bit images scaled to 8 bits), turned as it is displayed: a phone photo's EXIF orientation
    tag is applied (its mask, drawn on the displayed photo, has the displayed orientation)."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)  # a copy when turned, the same image when not
            eight_bit = to_8_bit(image) if image.mode in HIGH_BIT_DEPTH else image
            return np.asarray(eight_bit.convert(mode)).reshape(image.height, image.width, -1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable image ({error}); re-export or remove the file") from None


def read_raw_mask(path: Path, palette_colours: bool = False) -> np.ndarray:
    """A mask file as stored: H x W for grey/palette PNGs (palette indices, not colours, unless
    ``palette_colours``), H x W x 3 for RGB. Class ids live in 8 bits: a 16-bit mask is read as
    such when its values fit."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "L" or (image.mode == "P" and not palette_colours):
                return np.asarray(image)
            if image.mode in HIGH_BIT_DEPTH:
                values = np.asarray(image)
                if values.size and (values.min() < 0 or values.max() > 255):
                    raise DatasetError(
                        f"{path}: a {image.mode} mask with values {values.min()}..{values.max()}; class ids (and the "
                        "ignore value) must be 0..255. Re-save the mask as an 8-bit PNG of class ids"
                    )
                return values.astype(np.uint8)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable mask ({error}); re-export or remove the file") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Squash an H x W x C uint8 image to size x size x C (area interpolation)."""
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return resized[..., None] if resized.ndim == 2 else resized  # OpenCV drops a single channel axis


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Squash to size x size: area interpolation for the image, nearest for the class ids."""
    return resize_image(image, size), cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


RESIZE_POLICIES = ("square", "short_side", "none")


def policy_size(height: int, width: int, size: int, policy: str) -> tuple[int, int]:
    """(height, width) an image of height x width gets under ``data.resize``: ``square`` squashes
    to size x size, ``short_side`` scales so the shorter side is ``size`` (aspect kept), ``none``
    keeps it."""
    if policy == "square":
        return size, size
    if policy == "short_side":
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if policy == "none":
        return height, width
    raise ValueError(f"data.resize must be one of {RESIZE_POLICIES}, got {policy!r}")


def resize_by_policy(image: np.ndarray, mask: np.ndarray | None, size: int, policy: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Image (area interpolation) and mask (nearest; None: left as it is) resized by ``data.resize``."""
    height, width = policy_size(*image.shape[:2], size, policy)
    if (height, width) != image.shape[:2]:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR)
        image = image[..., None] if image.ndim == 2 else image
        if mask is not None:
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask


def require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path} does not exist or is not a folder. {hint}")
    return path


def read_list(path: Path) -> list[str]:
    """Names from a list file: the first word of each line; blank and '#' lines skipped."""
    if not path.is_file():
        raise DatasetError(f"split list not found: {path}. Is data.root the dataset's top folder?")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def paired_samples(names: list[str], image_of, mask_of) -> list[Sample]:
    """Samples for listed names; fails naming the files when an image or mask is missing."""
    samples = [Sample(name, image_of(name), mask_of(name)) for name in names]
    missing = [str(path) for s in samples for path in (s.image, s.mask) if not path.is_file()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"listed files not found: {', '.join(missing[:5])}{more}")
    return samples
