"""Oxford-IIIT Pet: images/*.jpg, annotations/trimaps/*.png, annotations/{trainval,test}.txt.

Trimaps code 1 = pet, 2 = background, 3 = border; the border becomes foreground, background
or ignored (``border``). val is a seeded fraction of trainval; test is test.txt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.download import download_with_hint
from src.data.files import Sample, paired_samples, read_list, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.masks import index_mask_ids
from src.data.splits import seeded_split

BORDERS = ("foreground", "background", "ignore")




class PetsDataModule(FileSegmentationDataModule):
    name = "pets"

    def __init__(self, root: str, border: str = "foreground", val_fraction: float = 0.1, download: bool = False, **kwargs):
        if border not in BORDERS:
            raise ValueError(f"data.border must be one of {BORDERS}, got {border!r}")
        super().__init__(root, **kwargs)
        self.border = border
        self.val_fraction = val_fraction
        self.download = download
        # trimap value -> class id
        self.lookup = np.full(256, -1, dtype=np.int16)
        self.lookup[[1, 2, 3]] = [1, 0, {"foreground": 1, "background": 0, "ignore": self.ignore_index}[border]]

    def prepare_data(self) -> None:
        if self.download and not (self.root / "annotations" / "trainval.txt").is_file():
            from torchvision.datasets import OxfordIIITPet

            download_with_hint(lambda: OxfordIIITPet(self.root.parent, target_types="segmentation", download=True),
                               "Oxford-IIIT Pet", self.root, "images/ and annotations/ (trimaps/, trainval.txt, test.txt)")  # fmt: skip

    def coding(self) -> dict:
        return {"border": self.border}

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "Oxford-IIIT Pet folder", "Set data.root to the folder holding images/ and annotations/, or data.download=true.")
        if split == "test":
            names = read_list(self.root / "annotations" / "test.txt")
        else:
            train, val = seeded_split(read_list(self.root / "annotations" / "trainval.txt"), self.val_fraction, self.seed)
            names = train if split == "train" else val
        return paired_samples(
            names, lambda n: self.root / "images" / f"{n}.jpg", lambda n: self.root / "annotations" / "trimaps" / f"{n}.png"
        )

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return index_mask_ids(self.lookup, raw, path, "trimap", "1 (pet), 2 (background), 3 (border)")

    def unpaired_files(self) -> list[str]:
        images = {p.stem for p in (self.root / "images").glob("*.jpg")}
        masks = {p.stem for p in (self.root / "annotations" / "trimaps").glob("*.png") if not p.name.startswith("._")}
        return [f"image without trimap: {self.root / 'images' / n}.jpg" for n in sorted(images - masks)] + [
            f"trimap without image: {self.root / 'annotations' / 'trimaps' / n}.png" for n in sorted(masks - images)
        ]
