"""Segmentation from any folder of images and masks (``data=folder``): a researcher's own data.

    <root>/images/<name>.<jpg|png|tif...>     <root>/masks/<name>.png       (matched by name)
    <root>/classes.csv (name,r,g,b) or classes.yaml, or data.classes     (the classes, optional)

Masks are class-index PNGs (mode L or P: pixel value = class id, ``ignore_index`` ignored), RGB
images coded by colour, one colour per class, or palette PNGs whose colours are the class list's.
Binary masks stored as 0/255 are read as background/foreground (said in the log);
``data.mask_values`` maps any stored values to classes. Images may sit in sub-folders of
``images/`` (the mask at the same relative path under ``masks/``); suffixes match in any case.
Splits, the first found of:
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
from PIL import Image

from src.data.files import IMAGE_SUFFIXES, DatasetError, Sample, read_list, read_raw_mask, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.masks import looked_up
from src.data.splits import SPLITS, completed_split_items
from src.utils.log import get_logger

log = get_logger(__name__)


def read_classes_csv(path: Path) -> list[dict]:
    """name[,r,g,b] rows of a classes.csv, as spreadsheets save it too: a UTF-8 byte-order mark,
    CRLF line ends, and ',' ';' or tab between the fields; a header row and '#' lines skipped."""
    lines = [(number, line) for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    if not lines:
        raise ValueError(f"{path}: no classes in the file (one line per class: name,r,g,b)")
    separator = max(",;\t", key=lambda candidate: lines[0][1].count(candidate))
    entries = []
    for (number, line), row in zip(lines, csv.reader([line for _, line in lines], delimiter=separator)):
        row = [field.strip() for field in row]
        while len(row) > 4 and not row[-1]:  # spreadsheets pad rows with empty fields
            row.pop()
        if number == lines[0][0] and row[0].lower() == "name":
            continue
        if len(row) not in (1, 4):
            raise ValueError(f"{path}, line {number}: {line.strip()!r} has {len(row)} fields; expected name or name,r,g,b")
        try:
            colour = [int(value) for value in row[1:]] if len(row) == 4 else None
        except ValueError:
            raise ValueError(f"{path}, line {number}: {line.strip()!r} is not name,r,g,b with whole numbers 0..255") from None
        entries.append({"name": row[0], "colour": colour})
    return entries


def read_classes(root: Path, classes: Sequence[Any] | None) -> list[dict] | None:
    """The class list as [{"name", "colour" (RGB or None)}]: ``data.classes`` (names, or
    {name, colour} entries), else ``classes.csv`` (name,r,g,b per line) or ``classes.yaml`` in root."""
    if classes is None:
        if (root / "classes.csv").is_file():
            classes = read_classes_csv(root / "classes.csv")
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


def transparency_note(path: Path) -> str:
    """For an error about a mask's colours: how many of its pixels are transparent, whose colour is
    only what the file stores under the alpha (often white or black), not what a viewer shows."""
    with Image.open(path) as image:
        if "A" not in image.getbands() and "transparency" not in image.info:
            return ""
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
    clear = int((alpha == 0).sum())
    if not clear:
        return ""
    return (f". The mask has an alpha channel: {clear} of its pixels are transparent, and their colour is what the file "
            "stores under them; save the mask without transparency, with the background in its class's colour")  # fmt: skip


class FolderDataModule(FileSegmentationDataModule):
    name = "folder"

    def __init__(
        self,
        root: str,
        classes: Sequence[Any] | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffix: str = ".png",
        mask_values: dict | None = None,
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
        self.mask_values = self._value_table(mask_values) if mask_values else None
        self._guessed_values: np.ndarray | None | bool = False  # False: not looked at yet
        self._splits: dict[str, list[Sample]] | None = None

    def _value_table(self, mask_values: dict) -> np.ndarray:
        """data.mask_values {stored value: class id} as a 256-entry table (-1: a value no class has)."""
        table = np.full(256, -1, dtype=np.int16)
        for value, class_id in dict(mask_values).items():
            if not (0 <= int(value) <= 255) or not (0 <= int(class_id) < self.num_classes or int(class_id) == self.ignore_index):
                raise ValueError(
                    f"data.mask_values: {value}: {class_id} must map a stored value 0..255 to a class id "
                    f"0..{self.num_classes - 1} or {self.ignore_index} (ignore)"
                )
            table[int(value)] = int(class_id)
        return table

    def stored_values(self) -> np.ndarray | None:
        """How index masks' stored values become class ids: data.mask_values, or, for two classes
        whose masks hold only 0 and 255 (binary masks as most tools save them), 255 = class 1;
        None: values are the ids."""
        if self.mask_values is not None or self.colour_ids is not None:
            return self.mask_values
        if self._guessed_values is False:
            self._guessed_values = self._guess_binary_coding()
        return self._guessed_values

    def _guess_binary_coding(self) -> np.ndarray | None:
        if self.num_classes != 2 or self.ignore_index != 255 or not self.root.is_dir():
            return None
        samples = self._split_names()["train"]
        counts = np.zeros(256, dtype=np.int64)
        for sample in samples[:: max(1, len(samples) // 64)]:  # up to ~64 masks, spread over the split
            raw = read_raw_mask(sample.mask)
            if raw.ndim == 2:
                counts += np.bincount(raw.ravel(), minlength=256)[:256]
        values = set(np.flatnonzero(counts).tolist())
        if 255 not in values or not values <= {0, 255}:
            return None
        log.info(
            f"data=folder: the masks of {self.root} hold only the values 0 and 255 (binary masks): read as "
            "0 = class 0 (background), 255 = class 1 (foreground), not as ignore. Set data.mask_values "
            "(e.g. {0: 0, 255: 1}) to read them otherwise."
        )
        return self._value_table({0: 0, 255: 1})

    def coding(self) -> dict:
        values = self.stored_values()
        return {"colours": sorted(self.colour_ids.items()) if self.colour_ids else None, "mask_suffix": self.mask_suffix,
                "values": None if values is None else values.tolist()}  # fmt: skip

    def raw_mask(self, path: Path) -> np.ndarray:
        # With class colours, a palette PNG is read by its colours: its indices need not be the class ids.
        return read_raw_mask(path, palette_colours=self.colour_ids is not None)

    # --- finding the pairs -----------------------------------------------------------------
    def _files(self, folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
        """name -> file for every file under ``folder`` (sub-folders included; hidden ones not) whose
        name ends in one of ``suffixes``, in any case; the name is its path below ``folder``
        without that ending ("batch1/photo")."""
        found = {}
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            ending = next((s for s in suffixes if path.name.lower().endswith(s.lower())), None)
            if ending is not None:
                found[relative.as_posix()[: -len(ending)]] = path
        return found

    def _pairs(self, images: Path, masks: Path) -> dict[str, Sample]:
        """name -> Sample for every image under ``images`` with its mask at the same place under
        ``masks``; images without a mask are named in the error."""
        require_dir(images, "image folder", f"Set data.root to the folder holding {images.name}/ and {masks.name}/ (or data.image_dir).")
        mask_files = self._files(masks, [self.mask_suffix])
        pairs, missing = {}, []
        for name, image in self._files(images, IMAGE_SUFFIXES).items():
            if name in mask_files:
                pairs[name] = Sample(name, image, mask_files[name])
            else:
                missing.append(str(image))
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(f"images without a mask ({masks}/<name>{self.mask_suffix}): {', '.join(missing[:5])}{more}")
        return pairs

    def _split_names(self) -> dict[str, list[Sample]]:
        """Every split's samples, found once (the folders are scanned on the first call only)."""
        if self._splits is None:
            self._splits = self._find_splits()
        return self._splits

    def _find_splits(self) -> dict[str, list[Sample]]:
        if (self.image_dir / "train").is_dir():
            found = {s: self._pairs(self.image_dir / s, self.mask_dir / s) for s in SPLITS if (self.image_dir / s).is_dir()}
        else:
            pairs = self._pairs(self.image_dir, self.mask_dir)
            lists = self.root / "splits"
            if (lists / "train.txt").is_file():
                found = {s: {name: self._listed(pairs, name, lists / f"{s}.txt") for name in read_list(lists / f"{s}.txt")}
                         for s in SPLITS if (lists / f"{s}.txt").is_file()}  # fmt: skip
            else:
                found = {"all": pairs}
        return completed_split_items(found, self.seed, self.val_fraction, self.test_fraction, "images/{split}/ or splits/{split}.txt")

    @staticmethod
    def _listed(pairs: dict[str, Sample], name: str, list_file: Path) -> Sample:
        if name not in pairs:
            raise DatasetError(f"{list_file}: {name!r} has no image with a mask")
        return pairs[name]

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "dataset folder", "Set data.root to the folder holding images/ and masks/.")
        return self._split_names()[split]

    # --- decoding masks ----------------------------------------------------------------------
    def mask_to_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if self.colour_ids is None:
            if raw.ndim != 2:
                raise DatasetError(
                    f"{path}: an RGB mask, but no class colours are given: give data.classes as name + colour "
                    "entries, or a classes.csv (name,r,g,b) in the dataset folder"
                )
            values = self.stored_values()
            if values is None:
                return raw.astype(np.uint8)
            ids, unknown = looked_up(values, raw)
            if unknown:
                known = {v: int(values[v]) for v in np.flatnonzero(values >= 0).tolist()}
                raise DatasetError(f"{path}: mask values {unknown[:10]} are not in the value -> class map {known} (data.mask_values)")
            return ids
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
                + ", ".join(f"{c['name']} {tuple(c['colour'])}" for c in self.classes) + transparency_note(path)
            )
        ids = np.array([lookup[v] for v in values.tolist()], dtype=np.uint8)
        return ids[inverse].reshape(codes.shape)

    def unpaired_files(self) -> list[str]:
        images = self._files(self.image_dir, IMAGE_SUFFIXES)
        return [f"mask without image: {mask}" for name, mask in self._files(self.mask_dir, [self.mask_suffix]).items()
                if name not in images]  # fmt: skip
