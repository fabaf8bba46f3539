"""Segmentation from any folder of images and masks (``data=folder``): a researcher's own data.

    <root>/images/<name>.<jpg|png|tif...>     <root>/masks/<name>.png       (matched by name)
    <root>/classes.csv (name,r,g,b) or classes.yaml, or data.classes     (the classes, optional)

Masks are class-index PNGs (mode L or P: pixel value = class id, ``ignore_index`` ignored) or
RGB images coded by colour, one colour per class. Splits, the first found of:
``images/{train,val,test}/`` with ``masks/`` alike; list files ``<root>/splits/{train,val,test}.txt``
(one name per line); seeded ``val_fraction`` / ``test_fraction`` of all pairs. A split missing
from the folders or lists is a seeded fraction of the training pairs.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from src.data.files import DatasetError, Sample, read_list, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.splits import SPLITS, seeded_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_classes(root: Path, classes: Sequence[Any] | None) -> list[dict] | None:
    """The class list as [{"name", "colour" (RGB or None)}]: ``data.classes`` (names, or
    {name, colour} entries), else ``classes.csv`` (name,r,g,b per line) or ``classes.yaml`` in root."""
    if classes is None:
        if (root / "classes.csv").is_file():
            with (root / "classes.csv").open(newline="") as file:
                rows = [row for row in csv.reader(file) if row and not row[0].startswith("#")]
            if rows and rows[0][0].strip().lower() == "name":
                rows = rows[1:]
            classes = [{"name": r[0].strip(), "colour": [int(v) for v in r[1:4]] if len(r) >= 4 else None} for r in rows]
        elif (root / "classes.yaml").is_file():
            classes = yaml.safe_load((root / "classes.yaml").read_text())
        else:
            return None
    entries = []
    for entry in classes:
        if isinstance(entry, str):
            entries.append({"name": entry, "colour": None})
        elif isinstance(entry, dict) and "name" in entry:
            colour = entry.get("colour", entry.get("color"))
            if colour is not None and (len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour)):
                raise ValueError(f"class {entry['name']!r}: colour {colour} is not an RGB triple of 0..255")
            entries.append({"name": str(entry["name"]), "colour": None if colour is None else [int(c) for c in colour]})
        else:
            raise ValueError(f"data.classes: {entry!r} is neither a name nor a {{name, colour}} entry")
    return entries


def count_classes(root: str, classes: Sequence[Any] | None) -> int:
    """data.num_classes for data=folder: the length of the class list (see read_classes)."""
    found = read_classes(Path(root).expanduser(), classes)
    if found is None:
        raise ValueError(
            f"data=folder: no class list for {root}: give data.classes (names, or name + colour entries), put a "
            "classes.csv (name,r,g,b) in the folder, or set data.num_classes"
        )
    return len(found)


class FolderDataModule(FileSegmentationDataModule):
    name = "folder"

    def __init__(
        self,
        root: str,
        classes: Sequence[Any] | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffix: str = ".png",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ):
        folder = Path(root).expanduser()
        self.classes = read_classes(folder, classes)
        if self.classes is not None:
            if num_classes is not None and num_classes != len(self.classes):
                raise ValueError(f"data.num_classes={num_classes} but the class list has {len(self.classes)} classes")
            num_classes = len(self.classes)
            class_names = class_names or [c["name"] for c in self.classes]
        if num_classes is None:
            count_classes(root, None)  # raises, saying how to give the classes
        super().__init__(root, num_classes=num_classes, class_names=class_names, **kwargs)
        self.image_dir, self.mask_dir, self.mask_suffix = self.root / image_dir, self.root / mask_dir, mask_suffix
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        colours = [c["colour"] for c in self.classes or []]
        self.colour_ids = {tuple(c): k for k, c in enumerate(colours) if c is not None} if any(colours) else None
        if self.colour_ids is not None and len(self.colour_ids) != len(colours):
            raise ValueError("data.classes: every class needs its own colour when masks are coded by colour")
        if self.colour_ids is not None:
            self._palette = np.array(colours, dtype=np.uint8)

    def coding(self) -> dict:
        return {"colours": sorted(self.colour_ids.items()) if self.colour_ids else None, "mask_suffix": self.mask_suffix}

    # --- finding the pairs -----------------------------------------------------------------
    def _pairs(self, images: Path, masks: Path) -> dict[str, Sample]:
        """name -> Sample for every image in ``images`` with its mask in ``masks``; images without
        a mask are named in the error."""
        require_dir(images, "image folder", f"Set data.root to the folder holding {images.name}/ and {masks.name}/ (or data.image_dir).")
        pairs, missing = {}, []
        for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")):
            mask = masks / f"{image.stem}{self.mask_suffix}"
            if mask.is_file():
                pairs[image.stem] = Sample(image.stem, image, mask)
            else:
                missing.append(str(image))
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(f"images without a mask ({masks}/<name>{self.mask_suffix}): {', '.join(missing[:5])}{more}")
        return pairs

    def _split_names(self) -> tuple[str, dict[str, list[Sample]]]:
        if (self.image_dir / "train").is_dir():
            found = {s: self._pairs(self.image_dir / s, self.mask_dir / s) for s in SPLITS if (self.image_dir / s).is_dir()}
            samples = {split: list(pairs.values()) for split, pairs in found.items()}
            how = "folders"
        else:
            pairs = self._pairs(self.image_dir, self.mask_dir)
            lists = self.root / "splits"
            if (lists / "train.txt").is_file():
                samples = {s: [self._listed(pairs, name, lists / f"{s}.txt") for name in read_list(lists / f"{s}.txt")]
                           for s in SPLITS if (lists / f"{s}.txt").is_file()}  # fmt: skip
                how = "lists"
            else:
                rest, test = seeded_split(list(pairs), self.test_fraction, self.seed)
                samples = {"train": [pairs[n] for n in rest], "test": [pairs[n] for n in test]}
                how = "fractions"
        if "val" not in samples:  # a seeded fraction of the training pairs
            by_name = {s.name: s for s in samples["train"]}
            train, val = seeded_split(list(by_name), self.val_fraction, self.seed)
            samples["train"], samples["val"] = [by_name[n] for n in train], [by_name[n] for n in val]
        if "test" not in samples:
            samples["test"] = samples["val"]
        return how, samples

    @staticmethod
    def _listed(pairs: dict[str, Sample], name: str, list_file: Path) -> Sample:
        if name not in pairs:
            raise DatasetError(f"{list_file}: {name!r} has no image with a mask")
        return pairs[name]

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "dataset folder", "Set data.root to the folder holding images/ and masks/.")
        return self._split_names()[1][split]

    # --- decoding masks ----------------------------------------------------------------------
    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if self.colour_ids is None:
            if raw.ndim != 2:
                raise DatasetError(
                    f"{path}: an RGB mask, but no class colours are given: give data.classes as name + colour "
                    "entries, or a classes.csv (name,r,g,b) in the dataset folder"
                )
            return raw.astype(np.uint8)
        if raw.ndim != 3:
            return raw.astype(np.uint8)  # an index mask beside colour classes: its values are the ids
        codes = (raw[..., 0].astype(np.int32) << 16) | (raw[..., 1].astype(np.int32) << 8) | raw[..., 2]
        lookup = {(r << 16) | (g << 8) | b: k for (r, g, b), k in self.colour_ids.items()}
        values, inverse = np.unique(codes, return_inverse=True)
        unknown = [v for v in values.tolist() if v not in lookup]
        if unknown:
            shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in unknown[:5])
            raise DatasetError(
                f"{path}: colours {shown}{' ...' if len(unknown) > 5 else ''} are no class's colour; known: "
                + ", ".join(f"{c['name']} {tuple(c['colour'])}" for c in self.classes)
            )
        ids = np.array([lookup[v] for v in values.tolist()], dtype=np.uint8)
        return ids[inverse].reshape(codes.shape)

    def unpaired_files(self) -> list[str]:
        masks = [p for p in self.mask_dir.rglob(f"*{self.mask_suffix}")] if self.mask_dir.is_dir() else []
        return [f"mask without image: {m}" for m in sorted(masks)
                if not any((self.image_dir / m.parent.relative_to(self.mask_dir) / f"{m.name[: -len(self.mask_suffix)]}{s}").is_file()
                           for s in IMAGE_SUFFIXES)]  # fmt: skip
