"""Class colours for masks and overlays."""

from __future__ import annotations

import cv2
import numpy as np


def voc_palette(num_classes: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map (class 0 black, 1 dark red, 2 green, ...) as uint8 (num_classes, 3).

    The bit-interleaving rule gives distinct colours for any number of classes up to 256.
    """
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for class_id in range(num_classes):
        c, r, g, b = class_id, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[class_id] = (r, g, b)
    return palette


IGNORE_COLOUR = np.array([255, 255, 255], dtype=np.uint8)


def colourise(mask: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Map an H x W class-id mask to an H x W x 3 uint8 image; ignored pixels are white."""
    out = palette[np.clip(mask, 0, len(palette) - 1)]
    out[mask == ignore_index] = IGNORE_COLOUR
    return out


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5, ignore_index: int = 255) -> np.ndarray:
    """Blend class colours over an RGB (or grey) uint8 image; background (class 0) and ignored
    pixels are left as they are."""
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    # In uint8 throughout (OpenCV rounds the weighted sum): a 24-megapixel photo costs a few
    # hundred MB here, not the gigabytes of float copies.
    blended = cv2.addWeighted(np.ascontiguousarray(image), 1 - alpha, colourise(mask, palette, ignore_index), alpha, 0.0)
    painted = (mask != 0) & (mask != ignore_index)
    return np.where(painted[..., None], blended, image)
