"""PASCAL VOC 2012 segmentation: JPEGImages/, SegmentationClass/ (palette PNGs, 255 = border),
ImageSets/Segmentation/{train,val}.txt. train.txt gives train and a seeded val fraction; the
official val.txt, whose masks are public (the official test set's are not), is the test split.
Object borders (255) are ignored (``border: ignore``), or learnt as a 22nd class
(``border: class``, data.num_classes=22), as VOC-style 22-class heads do."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.download import download_with_hint
from src.data.files import DatasetError, Sample, paired_samples, read_list, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.splits import seeded_split


BORDER_CLASS = 21  # after background and the 20 object classes


class VOCDataModule(FileSegmentationDataModule):
    name = "voc"

    def __init__(self, root: str, border: str = "ignore", val_fraction: float = 0.1, download: bool = False, **kwargs):
        if border not in ("ignore", "class"):
            raise ValueError(f"data.border must be 'ignore' or 'class', got {border!r}")
        if border == "class" and kwargs.get("num_classes") != BORDER_CLASS + 1:
            raise ValueError(f"data.border=class makes the border class {BORDER_CLASS}: set data.num_classes={BORDER_CLASS + 1}")
        super().__init__(root, **kwargs)
        self.border = border
        self.val_fraction = val_fraction
        self.download = download

    def coding(self) -> dict:
        return {"border": self.border}

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
        ids = raw.astype(np.uint8)
        if self.border == "class":
            ids[ids == 255] = BORDER_CLASS
        return ids

    def unpaired_files(self) -> list[str]:
        masks = {p.stem for p in (self.root / "SegmentationClass").glob("*.png")}
        images = {p.stem for p in (self.root / "JPEGImages").glob("*.jpg")}
        return [f"mask without image: {self.root / 'SegmentationClass' / n}.png" for n in sorted(masks - images)]
