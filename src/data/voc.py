"""PASCAL VOC 2012 segmentation: JPEGImages/, SegmentationClass/ (palette PNGs, 255 = border),
ImageSets/Segmentation/{train,val}.txt. train.txt gives train and a seeded val fraction; the
official val.txt, whose masks are public (the official test set's are not), is the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.download import download_with_hint
from src.data.files import DatasetError, FileSegmentationDataModule, Sample, require_dir, seeded_split
from src.data.pets import paired_samples, read_list


class VOCDataModule(FileSegmentationDataModule):
    name = "voc"

    def __init__(self, root: str, val_fraction: float = 0.1, download: bool = False, **kwargs):
        super().__init__(root, **kwargs)
        self.val_fraction = val_fraction
        self.download = download

    def prepare_data(self) -> None:
        if self.download and not (self.root / "ImageSets" / "Segmentation" / "train.txt").is_file():
            from torchvision.datasets import VOCSegmentation

            # torchvision unpacks into <root>/VOCdevkit/VOC2012; data.root names that last folder.
            download_with_hint(lambda: VOCSegmentation(self.root.parents[1], year="2012", download=True),
                               "PASCAL VOC 2012", self.root, "JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/")  # fmt: skip

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "VOC2012 folder", "Set data.root to .../VOCdevkit/VOC2012, or data.download=true.")
        lists = self.root / "ImageSets" / "Segmentation"
        if split == "test":
            names = read_list(lists / "val.txt")
        else:
            train, val = seeded_split(read_list(lists / "train.txt"), self.val_fraction, self.seed)
            names = train if split == "train" else val
        return paired_samples(
            names, lambda n: self.root / "JPEGImages" / f"{n}.jpg", lambda n: self.root / "SegmentationClass" / f"{n}.png"
        )

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 2:
            raise DatasetError(
                f"{path}: VOC masks are palette PNGs whose indices are the class ids; this one is an RGB image "
                "(re-save it with the VOC palette)"
            )
        return raw.astype(np.uint8)

    def unpaired_files(self) -> list[str]:
        masks = {p.stem for p in (self.root / "SegmentationClass").glob("*.png")}
        images = {p.stem for p in (self.root / "JPEGImages").glob("*.jpg")}
        return [f"mask without image: {self.root / 'SegmentationClass' / n}.png" for n in sorted(masks - images)]
