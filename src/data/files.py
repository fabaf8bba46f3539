"""Image and mask files: reading them with errors that name the file, resizing, and list helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Refuse decompression bombs with a clear error instead of exhausting memory.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


class DatasetError(ValueError):
    """A problem with one file of a dataset; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Any image file as H x W x C uint8 (grey, palette and alpha images converted to ``mode``)."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert(mode)).reshape(image.height, image.width, -1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable image ({error}); re-export or remove the file") from None


def read_raw_mask(path: Path) -> np.ndarray:
    """A mask file as stored: H x W for grey/palette PNGs (palette indices, not colours), H x W x 3 for RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("L", "P", "I", "I;16"):
                return np.asarray(image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable mask ({error}); re-export or remove the file") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Squash an H x W x C uint8 image to size x size x C (area interpolation)."""
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return resized[..., None] if resized.ndim == 2 else resized  # OpenCV drops a single channel axis


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Squash to size x size: area interpolation for the image, nearest for the class ids."""
    return resize_image(image, size), cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


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
