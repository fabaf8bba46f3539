"""Land-cover tiles: NNNN_sat.jpg with NNNN_mask.png beside it, 7 classes coded by RGB colour.

Mask colours are thresholded at 128 per channel before the look-up, because masks that went
through JPEG have noisy colours. train/val/test are seeded fractions of the tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.files import DatasetError, Sample, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.splits import seeded_split

# class name -> RGB colour (the DeepGlobe land-cover coding)
COLOURS = {
    "urban": (0, 255, 255),
    "agriculture": (255, 255, 0),
    "rangeland": (255, 0, 255),
    "forest": (0, 255, 0),
    "water": (0, 0, 255),
    "barren": (255, 255, 255),
    "unknown": (0, 0, 0),
}


def colour_code(rgb: np.ndarray) -> np.ndarray:
    """3-bit code of each pixel's thresholded colour: 4*R + 2*G + B."""
    bits = rgb >= 128
    return (bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]).astype(np.uint8)


class SatelliteDataModule(FileSegmentationDataModule):
    name = "satellite"

    def __init__(self, root: str, val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs):
        super().__init__(root, **kwargs)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.lookup = np.full(8, -1, dtype=np.int16)
        for class_id, colour in enumerate(COLOURS.values()):
            self.lookup[colour_code(np.array(colour))] = class_id
        self._palette = np.array(list(COLOURS.values()), dtype=np.uint8)

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "satellite tiles folder", "Set data.root to the folder of NNNN_sat.jpg and NNNN_mask.png files.")
        tiles = sorted(p.name[: -len("_sat.jpg")] for p in self.root.glob("*_sat.jpg"))
        without_mask = [self.root / f"{t}_sat.jpg" for t in tiles if not (self.root / f"{t}_mask.png").is_file()]
        if without_mask:
            raise DatasetError(f"tiles without a mask ({len(without_mask)}): {', '.join(map(str, without_mask[:5]))}; "
                               "each NNNN_sat.jpg needs its NNNN_mask.png")  # fmt: skip
        rest, test = seeded_split(tiles, self.test_fraction, self.seed)
        train, val = seeded_split(rest, self.val_fraction / max(1e-9, 1 - self.test_fraction), self.seed + 1)
        names = {"train": train, "val": val, "test": test}[split]
        return [Sample(t, self.root / f"{t}_sat.jpg", self.root / f"{t}_mask.png") for t in names]

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 3:
            raise DatasetError(f"{path}: land-cover masks are RGB colour images; this one has a single channel")
        ids = self.lookup[colour_code(raw)]
        if (ids < 0).any():
            count = int((ids < 0).sum())
            raise DatasetError(
                f"{path}: {count} pixels of a colour that is no class (red after thresholding at 128); "
                f"known colours: {', '.join(f'{k} {v}' for k, v in COLOURS.items())}"
            )
        return ids.astype(np.uint8)

    def unpaired_files(self) -> list[str]:
        images = {p.name[: -len("_sat.jpg")] for p in self.root.glob("*_sat.jpg")}
        masks = {p.name[: -len("_mask.png")] for p in self.root.glob("*_mask.png")}
        return [f"tile without mask: {self.root / n}_sat.jpg" for n in sorted(images - masks)] + [
            f"mask without tile: {self.root / n}_mask.png" for n in sorted(masks - images)
        ]
