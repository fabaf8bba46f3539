"""Synthetic shapes: a segmentation dataset generated in code, the default that needs no download.

Each image holds one to four shapes (circle, rectangle, triangle) of random size, position
and colour over a noisy, textured background. Every item is drawn from its own random stream
keyed by (data seed, split, index), so the splits never share an image and the same config
always gives the same pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from src.data.datamodule import SegmentationDataModule
from src.data.splits import SPLITS, SplitArrays

SHAPE_KINDS = ("circle", "rectangle", "triangle")
VARIANTS = ("binary", "multiclass")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A base colour with low-frequency blotches, a faint stripe pattern and per-pixel noise."""
    base = rng.uniform(40, 215, size=3)
    blotches = cv2.resize(rng.normal(0, 30, (6, 6, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
    stripes = 15 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    return base + blotches + stripes[..., None]


def _shape_mask(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.15, 0.85, size=2) * size
    r = rng.uniform(0.08, 0.22) * size
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    if kind == "rectangle":
        half_w, half_h = r * rng.uniform(0.6, 1.2, size=2)
        return (np.abs(xx - cx) <= half_w) & (np.abs(yy - cy) <= half_h)
    # Triangle: inside the three edges of a randomly rotated equilateral triangle.
    angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3
    px, py = cx + 1.3 * r * np.cos(angles), cy + 1.3 * r * np.sin(angles)
    inside = np.ones((size, size), dtype=bool)
    for i in range(3):
        j = (i + 1) % 3
        inside &= (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i]) >= 0
    return inside


def render_shapes(rng: np.random.Generator, size: int, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """One image (size x size x 3 uint8) and its mask (class ids, uint8)."""
    image = _background(rng, size)
    background_colour = image.mean(axis=(0, 1))
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, 5)):
        kind_id = int(rng.integers(len(SHAPE_KINDS)))
        inside = _shape_mask(rng, SHAPE_KINDS[kind_id], size)
        # A colour clearly apart from the background, so every shape is visible to a person.
        colour = rng.uniform(0, 255, size=3)
        while np.linalg.norm(colour - background_colour) < 90:
            colour = rng.uniform(0, 255, size=3)
        image[inside] = colour + rng.normal(0, 10, size=(int(inside.sum()), 3))
        mask[inside] = 1 if variant == "binary" else kind_id + 1
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


class ShapesDataModule(SegmentationDataModule):
    def __init__(
        self,
        variant: str = "binary",
        num_train: int = 600,
        num_val: int = 150,
        num_test: int = 150,
        seed: int = 1234,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"data.variant must be one of {VARIANTS}, got {variant!r}")
        expected_classes = 2 if variant == "binary" else 1 + len(SHAPE_KINDS)
        if kwargs.get("num_classes") != expected_classes:
            raise ValueError(
                f"data.variant={variant} has {expected_classes} classes, but data.num_classes={kwargs.get('num_classes')}"
            )
        super().__init__(seed=seed, **kwargs)
        self.variant = variant
        self.split_sizes = {"train": num_train, "val": num_val, "test": num_test}

    def load_split(self, split: str) -> SplitArrays:
        count, split_id = self.split_sizes[split], SPLITS.index(split)
        images = np.empty((count, self.image_size, self.image_size, 3), dtype=np.uint8)
        masks = np.empty((count, self.image_size, self.image_size), dtype=np.uint8)
        for index in range(count):
            rng = np.random.default_rng([self.seed, split_id, index])
            images[index], masks[index] = render_shapes(rng, self.image_size, self.variant)
        return SplitArrays(images, masks, [f"shapes_{split}_{index:05d}" for index in range(count)])
