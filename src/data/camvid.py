"""CamVid in SegNet's 12-label version: {train,val,test}/ photos and {train,val,test}annot/ index
masks (0..10 the classes, 11 void), 480 x 360, with list files {train,val,test}.txt.

The list files carry the absolute paths of the machine they were written on
("/SegNet/CamVid/train/X.png /SegNet/CamVid/trainannot/X.png"): each path is taken relative to
the dataset folder from the folder it names on (``train/X.png``). Void is ignored (ignore_index),
so the headline mIoU is the 11 classes' mean, as published tables report it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from src.data.files import DatasetError, Sample, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.masks import index_mask_ids

# name -> display colour, as SegNet's scripts draw them (void is drawn white by seglab, like every ignore)
CLASSES = {
    "sky": (128, 128, 128), "building": (128, 0, 0), "pole": (192, 192, 128), "road": (128, 64, 128),
    "pavement": (60, 40, 222), "tree": (128, 128, 0), "sign_symbol": (192, 128, 128), "fence": (64, 64, 128),
    "car": (64, 0, 128), "pedestrian": (64, 64, 0), "bicyclist": (0, 128, 192),
}  # fmt: skip
VOID = 11
FOLDERS = {"train": ("train", "trainannot"), "val": ("val", "valannot"), "test": ("test", "testannot")}


def relative_to_root(listed: str, folders: tuple[str, ...]) -> PurePosixPath:
    """``/SegNet/CamVid/train/X.png`` -> ``train/X.png``: the path from the last of ``folders`` it passes through."""
    parts = PurePosixPath(listed.replace("\\", "/")).parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] in folders:
            return PurePosixPath(*parts[index:])
    return PurePosixPath(parts[-1])


class CamVidDataModule(FileSegmentationDataModule):
    name = "camvid"

    def __init__(self, root: str, **kwargs):
        super().__init__(root, **kwargs)
        if self.num_classes != len(CLASSES):
            raise ValueError(f"data=camvid has {len(CLASSES)} classes (void ignored); data.num_classes={self.num_classes}")
        self.lookup = np.arange(256, dtype=np.int16)
        self.lookup[VOID] = self.ignore_index
        self.lookup[VOID + 1 :] = -1
        self.lookup[self.ignore_index] = self.ignore_index
        self._palette = np.array(list(CLASSES.values()), dtype=np.uint8)

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "CamVid folder", "Set data.root to the folder holding train/, trainannot/, ... and train.txt (SegNet's CamVid).")
        image_folder, mask_folder = FOLDERS[split]
        listing = self.root / f"{split}.txt"
        if listing.is_file():
            pairs = [line.split() for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
            bad = [" ".join(pair) for pair in pairs if len(pair) != 2]
            if bad:
                raise DatasetError(f"{listing}: each line is 'IMAGE MASK' (two paths); got {bad[0]!r}")
            samples = [Sample(Path(image).stem, self.root / relative_to_root(image, tuple(FOLDERS[split])),
                              self.root / relative_to_root(mask, tuple(FOLDERS[split]))) for image, mask in pairs]  # fmt: skip
        else:  # no list file: every photo of the folder with the mask of its name
            folder = require_dir(self.root / image_folder, f"CamVid {split} folder", f"CamVid needs {image_folder}/ and {mask_folder}/ (or {split}.txt)")
            samples = [Sample(p.stem, p, self.root / mask_folder / p.name) for p in sorted(folder.glob("*.png"))]
        missing = [str(path) for s in samples for path in (s.image, s.mask) if not path.is_file()]
        if missing:
            raise DatasetError(f"{listing.name if listing.is_file() else split}: {len(missing)} listed files not found under "
                               f"{self.root}, e.g. {missing[0]} (list paths are read from the folder they name on: train/X.png)")  # fmt: skip
        return samples

    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return index_mask_ids(self.lookup, raw, path, "label", "class ids 0..10 and 11 (void, SegNet's CamVid)")

    def unpaired_files(self) -> list[str]:
        problems = []
        for images, masks in FOLDERS.values():
            have = {p.name for p in (self.root / images).glob("*.png")}
            labelled = {p.name for p in (self.root / masks).glob("*.png")}
            problems += [f"photo without labels: {self.root / images / n}" for n in sorted(have - labelled)]
            problems += [f"labels without photo: {self.root / masks / n}" for n in sorted(labelled - have)]
        return problems
