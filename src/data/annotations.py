"""Masks drawn from annotation-tool exports instead of read from PNGs: COCO instance JSON
(``data=coco``: polygons, uncompressed and compressed RLE, by pycocotools) and labelme's one JSON
per image (``data=labelme``: polygons, rectangles, circles, lines and points, drawn with PIL as
labelme draws them).

Overlaps: annotations are drawn in the order the file lists them, each over the ones before (the
last one drawn is on top), as labelme renders its class PNGs. Splits: ``train``/``val``/``test``
JSON files or folders where given, else seeded fractions (src.data.splits.completed_splits).
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from src.data.files import IMAGE_SUFFIXES, DatasetError, Sample, require_dir
from src.data.from_files import FileSegmentationDataModule
from src.data.splits import SPLITS, completed_split_items

BACKGROUND_NAMES = ("_background_", "background", "__background__")
IGNORE_LABEL = "__ignore__"  # labelme's label for regions to leave out of training and scoring


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not readable JSON ({error})") from None


class AnnotatedDataModule(FileSegmentationDataModule):
    """Shared by data=coco and data=labelme: splits given or by seeded fractions, found once."""

    split_hint = ""

    def __init__(self, root: str, val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs):
        super().__init__(root, **kwargs)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def given_splits(self) -> dict[str, dict[str, Sample]]:
        """{split: {name: sample}}, or {"all": ...} when the dataset names no splits."""
        raise NotImplementedError

    @cached_property
    def _splits(self) -> dict[str, list[Sample]]:
        return completed_split_items(self.given_splits(), self.seed, self.val_fraction, self.test_fraction, self.split_hint)

    def list_split(self, split: str) -> list[Sample]:
        require_dir(self.root, "dataset folder", f"Set data.root to the folder holding the {self.name} annotations.")
        return self._splits[split]


# --- COCO ------------------------------------------------------------------------------------


def coco_classes(categories: list[dict], category_ids: bool) -> tuple[list[str], dict[int, int]]:
    """(class names, {category id: class id}). A category named _background_/background is class 0;
    the others follow in id order (1, 2, ...), or keep their ids with ``category_ids``."""
    named = sorted(categories, key=lambda c: c["id"])
    background = [c for c in named if str(c["name"]).lower() in BACKGROUND_NAMES]
    others = [c for c in named if c not in background]
    if category_ids:
        if any(c["id"] == 0 for c in others):
            raise ValueError(f"data.category_ids=true: category {others[0]['name']!r} has id 0, which is background")
        size = max([c["id"] for c in others], default=0) + 1
        names = [f"class_{k}" for k in range(size)]
        names[0] = "background"
        for c in others:
            names[c["id"]] = str(c["name"])
        ids = {c["id"]: c["id"] for c in others}
    else:
        names = ["background"] + [str(c["name"]) for c in others]
        ids = {c["id"]: k + 1 for k, c in enumerate(others)}
    ids.update({c["id"]: 0 for c in background})
    return names, ids


def count_coco_classes(root: str, annotations: Any, category_ids: bool = False) -> int:
    """data.num_classes for data=coco: the classes of the first annotation file's categories."""
    first = next(iter(annotations.values())) if isinstance(annotations, dict) else annotations
    return len(coco_classes(read_json(Path(root).expanduser() / first).get("categories", []), category_ids)[0])


def coco_region(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One annotation's pixels (bool, height x width): polygons, uncompressed RLE (counts a list)
    or compressed RLE (counts a string), as pycocotools reads them."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):  # polygons [[x0, y0, x1, y1, ...], ...]
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=segmentation["counts"].encode() if isinstance(segmentation["counts"], str) else segmentation["counts"])
    return coco_mask.decode(rle).astype(bool)


class CocoDataModule(AnnotatedDataModule):
    """Semantic masks from COCO instances JSON: ``annotations`` is one file (split by fractions) or
    {train: a.json, val: b.json, test: c.json} under ``root``; image file names are read relative
    to ``image_dir`` (default: the JSON file's folder). Crowd regions (``iscrowd``) are their class,
    or ignored with ``crowd: ignore``. Images without annotations are skipped, or all background
    with ``unannotated: background``."""

    name = "coco"
    split_hint = "a {split} entry of data.annotations"

    def __init__(
        self,
        root: str,
        annotations: str | dict = "annotations.json",
        image_dir: str | None = None,
        category_ids: bool = False,
        crowd: str = "class",
        unannotated: str = "skip",
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ):
        if crowd not in ("class", "ignore"):
            raise ValueError(f"data.crowd must be 'class' or 'ignore', got {crowd!r}")
        if unannotated not in ("skip", "background"):
            raise ValueError(f"data.unannotated must be 'skip' or 'background', got {unannotated!r}")
        folder = Path(root).expanduser()
        unknown = set(annotations) - set(SPLITS) if isinstance(annotations, dict) else set()
        if unknown:
            raise ValueError(f"data.annotations: {sorted(unknown)} are no splits; use {list(SPLITS)}")
        self.files = {s: folder / f for s, f in annotations.items()} if isinstance(annotations, dict) else {"all": folder / annotations}
        self.image_dir = image_dir
        self.crowd, self.unannotated = crowd, unannotated
        self.documents = {split: read_json(path) for split, path in self.files.items()}
        first = next(iter(self.documents.values()))
        names, self.category_class = coco_classes(first.get("categories", []), category_ids)
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"data.num_classes={num_classes}, but the categories of {next(iter(self.files.values()))} give {len(names)} classes")
        super().__init__(root, num_classes=len(names), class_names=class_names or names, **kwargs)
        self.regions: dict[tuple[str, str], list[dict]] = {}  # (annotation file, sample name) -> its annotations, in file order

    def coding(self) -> dict:
        return {"crowd": self.crowd, "classes": sorted(self.category_class.items())}

    def given_splits(self) -> dict[str, dict[str, Sample]]:
        found: dict[str, dict[str, Sample]] = {}
        for split, document in self.documents.items():
            path = self.files[split]
            images = {image["id"]: image for image in document.get("images", [])}
            by_image: dict[int, list[dict]] = {image_id: [] for image_id in images}
            for annotation in document.get("annotations", []):
                if annotation.get("image_id") not in images:
                    raise DatasetError(f"{path}: annotation {annotation.get('id')} is of image {annotation.get('image_id')}, which is not listed")
                if annotation.get("category_id") not in self.category_class:
                    raise DatasetError(f"{path}: annotation {annotation.get('id')} has category {annotation.get('category_id')}, "
                                       f"which is not in its categories")  # fmt: skip
                by_image[annotation["image_id"]].append(annotation)
            base = Path(self.image_dir).expanduser() if self.image_dir else path.parent
            samples = {}
            for image_id, image in images.items():
                if not by_image[image_id] and self.unannotated == "skip":
                    continue
                name = Path(image["file_name"]).stem
                if name in samples:
                    name = Path(image["file_name"]).with_suffix("").as_posix()
                file = base / image["file_name"]
                if not file.is_file():
                    raise DatasetError(f"{path}: image {image['file_name']!r} not found at {file} (set data.image_dir to the images' folder)")
                samples[name] = Sample(name, file, path)
                self.regions[str(path), name] = [dict(a, height=image["height"], width=image["width"]) for a in by_image[image_id]]
            found[split] = samples
        return found

    def sample_mask(self, sample: Sample, height: int, width: int) -> np.ndarray:
        key = (str(sample.mask), sample.name)
        if key not in self.regions:  # the annotations of each sample are gathered with the splits
            self.given_splits()
        mask = np.zeros((height, width), dtype=np.uint8)
        for annotation in self.regions[key]:
            if (annotation["height"], annotation["width"]) != (height, width):
                raise DatasetError(f"{sample.mask}: {sample.image.name} is {width}x{height}, the JSON says "
                                   f"{annotation['width']}x{annotation['height']}")  # fmt: skip
            region = coco_region(annotation["segmentation"], height, width)
            crowd = annotation.get("iscrowd", 0) and self.crowd == "ignore"
            mask[region] = self.ignore_index if crowd else self.category_class[annotation["category_id"]]
        return mask


# --- labelme ---------------------------------------------------------------------------------


def labelme_class_list(root: Path, classes: Sequence[str] | str | None) -> list[str]:
    """Class names, class 0 first: ``classes`` as names or a labels.txt (one per line, __ignore__
    left out, as labelme's labelme2voc reads it); null: every label found, background first, then
    the others sorted."""
    if isinstance(classes, str):
        path = Path(classes).expanduser()
        path = path if path.is_absolute() or path.is_file() else root / path
        if not path.is_file():
            raise FileNotFoundError(f"data.classes={classes}: no such labels file (one class name per line)")
        classes = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if classes is not None:
        return [str(name) for name in classes if name != IGNORE_LABEL]
    labels = {shape["label"] for path in sorted(require_dir(root, "labelme folder", "Set data.root to the folder of labelme JSON files.").rglob("*.json"))
              for shape in read_json(path).get("shapes", [])}  # fmt: skip
    labels.discard(IGNORE_LABEL)
    background = [name for name in BACKGROUND_NAMES if name in labels][:1] or ["_background_"]
    return background + sorted(labels - set(background))


def count_labelme_classes(root: str, classes: Any) -> int:
    return len(labelme_class_list(Path(root).expanduser(), classes))


def draw_shape(draw: ImageDraw.ImageDraw, shape: dict, value: int, line_width: int, point_size: int, path: Path) -> None:
    """One labelme shape, as labelme's shape_to_mask draws it."""
    points = [tuple(map(float, p)) for p in shape.get("points", [])]
    kind = shape.get("shape_type") or "polygon"
    if kind == "polygon" and len(points) >= 3:
        draw.polygon(points, outline=value, fill=value)
    elif kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=value, fill=value)
    elif kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, fill=value)
    elif kind in ("line", "linestrip") and len(points) >= 2:
        draw.line(points, fill=value, width=line_width)
    elif kind == "point" and len(points) == 1:
        (cx, cy), r = points[0], point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, fill=value)
    else:
        raise DatasetError(f"{path}: a {kind!r} shape with {len(points)} points ({shape.get('label')!r}); seglab draws "
                           "polygons (3+ points), rectangles and circles (2), lines and linestrips (2+) and points (1)")  # fmt: skip


class LabelmeDataModule(AnnotatedDataModule):
    """One labelme JSON per image anywhere under ``root`` (its image found by ``imagePath``, beside
    it); ``train/``, ``val/``, ``test/`` subfolders are the splits where present. Labels become
    classes by ``classes`` (names or a labels.txt; null: the labels found); __ignore__ regions are
    ignored. Lines are ``line_width`` px wide and points discs of radius ``point_size``."""

    name = "labelme"
    split_hint = "a {split}/ folder of JSON files"

    def __init__(
        self,
        root: str,
        classes: Sequence[str] | str | None = None,
        line_width: int = 10,
        point_size: int = 5,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ):
        names = labelme_class_list(Path(root).expanduser(), classes)
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"data.num_classes={num_classes}, but the class list has {len(names)} classes")
        super().__init__(root, num_classes=len(names), class_names=class_names or names, **kwargs)
        self.class_ids = {name: k for k, name in enumerate(names)}
        self.line_width, self.point_size = line_width, point_size

    def coding(self) -> dict:
        return {"classes": sorted(self.class_ids.items()), "line_width": self.line_width, "point_size": self.point_size}

    def given_splits(self) -> dict[str, dict[str, Sample]]:
        folders = {split: self.root / split for split in SPLITS if (self.root / split).is_dir()}
        found = {split: self._samples(folder) for split, folder in (folders.items() if "train" in folders else [("all", self.root)])}
        return found

    def _samples(self, folder: Path) -> dict[str, Sample]:
        samples = {}
        for path in sorted(folder.rglob("*.json")):
            document = read_json(path)
            if not isinstance(document, dict) or "shapes" not in document:
                continue  # not a labelme file (a COCO export, a class list)
            image = path.parent / document.get("imagePath", "")
            if not document.get("imagePath") or not image.is_file():
                image = next((path.with_suffix(s) for s in IMAGE_SUFFIXES if path.with_suffix(s).is_file()), image)
            if not image.is_file():
                raise DatasetError(f"{path}: its image {document.get('imagePath')!r} is not beside it")
            name = path.relative_to(folder).with_suffix("").as_posix()
            samples[name] = Sample(name, image, path)
        if not samples:
            raise DatasetError(f"{folder}: no labelme JSON files (with 'shapes') found")
        return samples

    def sample_mask(self, sample: Sample, height: int, width: int) -> np.ndarray:
        document = read_json(sample.mask)
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for shape in document.get("shapes", []):
            label = shape.get("label")
            if label == IGNORE_LABEL:
                value = self.ignore_index
            elif label in self.class_ids:
                value = self.class_ids[label]
            else:
                raise DatasetError(f"{sample.mask}: label {label!r} is not in the class list {list(self.class_ids)} (data.classes)")
            draw_shape(draw, shape, value, self.line_width, self.point_size, sample.mask)
        return np.asarray(canvas, dtype=np.uint8)
