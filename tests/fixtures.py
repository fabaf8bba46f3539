"""Tiny datasets written in their real on-disk formats (JPEG, palette/grey/RGB PNG, CIFAR pickles)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from src.data.palettes import voc_palette
from src.data.satellite import COLOURS


def blob_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A filled ellipse (1) on background (0)."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)


def red_on_blue(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB image whose foreground is red and background blue, with mild noise: the mask can be
    read back from the pixels (red > blue)."""
    image = np.zeros((*mask.shape, 3), dtype=np.float32)
    image[mask == 1] = (200, 40, 40)
    image[mask == 0] = (40, 40, 200)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_pets(root: Path, trainval: int = 20, test: int = 8, size=(56, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    lists = {"trainval": [], "test": []}
    for index in range(trainval + test):
        name = f"Breed_{index + 1}"
        mask = blob_mask(rng, size[1], size[0])
        image = red_on_blue(mask, rng)
        trimap = np.where(mask == 1, 1, 2).astype(np.uint8)
        # a one-pixel border ring coded 3, as in the real trimaps
        edge = (np.abs(np.diff(mask.astype(int), axis=0, prepend=0)) > 0) | (np.abs(np.diff(mask.astype(int), axis=1, prepend=0)) > 0)
        trimap[edge] = 3
        picture = Image.fromarray(image)
        if index == 1:
            picture = picture.convert("L")  # the real set has grey images ...
        if index == 2:
            picture = picture.convert("RGBA")  # ... and some with alpha, saved under a .jpg name
            picture.save(root / "images" / f"{name}.jpg", format="PNG")
        else:
            picture.save(root / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(trimap, mode="L").save(root / "annotations" / "trimaps" / f"{name}.png")
        lists["trainval" if index < trainval else "test"].append(f"{name} 1 1 1")
    for split, lines in lists.items():
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_voc(root: Path, train: int = 20, val: int = 8, size=(50, 40), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    palette = voc_palette(256).flatten().tolist()
    names = {"train": [], "val": []}
    for index in range(train + val):
        name = f"2007_{index:06d}"
        blob = blob_mask(rng, size[1], size[0])
        mask = np.where(blob == 1, rng.integers(1, 21), 0).astype(np.uint8)
        mask[0, :] = 255  # void border, as VOC draws around objects
        Image.fromarray(red_on_blue(blob, rng)).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{name}.png")
        names["train" if index < train else "val"].append(name)
    for split, lines in names.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_satellite(root: Path, tiles: int = 20, size: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    colours = np.array(list(COLOURS.values()), dtype=np.int16)
    for index in range(tiles):
        ids = np.zeros((size, size), dtype=np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, size, 2)
            ids[y : y + size // 2, x : x + size // 2] = rng.integers(0, len(colours))
        # JPEG-era masks: colours a little off (e.g. 250 for 255, 6 for 0), fixed by thresholding at 128
        rgb = np.clip(colours[ids] + rng.integers(-6, 7, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / f"{index:04d}_mask.png")
        Image.fromarray(red_on_blue((ids > 2).astype(np.uint8), rng)).save(root / f"{index:04d}_sat.jpg", quality=95)
    return root


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    with open(root / "batches.meta", "wb") as file:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}, file)
    for batch in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 3, 8, 8), dtype=np.uint8).repeat(4, axis=2).repeat(4, axis=3)
        labels = [int(label) for label in rng.integers(0, 10, per_batch)]
        content = {
            b"batch_label": batch.encode(),
            b"labels": labels,
            b"data": images.reshape(per_batch, 3072),
            b"filenames": [f"{batch}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(root / batch, "wb") as file:
            pickle.dump(content, file)
    return root


def make_image_folder(root: Path, classes=("circle", "square", "stripes"), per_class: int = 10, size=(40, 36),
                      flat: bool = False, seed: int = 0) -> Path:  # fmt: skip
    """A classification folder whose classes are told apart by a drawn pattern: one sub-folder
    per class (torchvision's ImageFolder layout), or flat <class>_<index>.png files."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    patterns = {
        "circle": (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(size) / 3) ** 2,
        "square": (abs(yy - height / 2) < height / 4) & (abs(xx - width / 2) < width / 4),
        "stripes": (xx // 4) % 2 == 0,
    }
    for name in classes:
        folder = root if flat else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 60, (height, width, 3))
            pixels[patterns[name]] += 150
            path = folder / (f"{name}_{index:04d}.png" if flat else f"{index:04d}.png")
            picture = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
            if index == 1:
                picture = picture.convert("L")  # a grey one, read as RGB
            picture.save(path)
    return root


FOLDER_CLASSES = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("tree", (0, 200, 0))]


def make_folder(root: Path, count: int = 24, coding: str = "rgb", seed: int = 0, layout: str = "flat") -> Path:
    """A user's own dataset: images/<name>.jpg of mixed sizes and masks/<name>.png with 3 classes,
    RGB colour-coded (with classes.csv) or class-index PNGs; ``layout`` flat, folders (images/train/...)
    or lists (splits/*.txt)."""
    rng = np.random.default_rng(seed)
    names = [f"photo_{index:03d}" for index in range(count)]
    splits = {"train": names[: count * 2 // 3], "val": names[count * 2 // 3 : count * 5 // 6], "test": names[count * 5 // 6 :]}
    for split, members in splits.items():
        sub = split if layout == "folders" else ""
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "masks" / sub).mkdir(parents=True, exist_ok=True)
        for name in members:
            height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            ids = blob_mask(rng, height, width)
            ids[: height // 4] = 2  # a band of "tree" at the top
            image = red_on_blue(np.minimum(ids, 1), rng)
            image[ids == 2] = (20, 180, 20)
            Image.fromarray(image).save(root / "images" / sub / f"{name}.jpg", quality=95)
            if coding == "rgb":
                colours = np.array([colour for _, colour in FOLDER_CLASSES], dtype=np.uint8)
                Image.fromarray(colours[ids]).save(root / "masks" / sub / f"{name}.png")
            else:
                Image.fromarray(ids.astype(np.uint8), mode="L").save(root / "masks" / sub / f"{name}.png")
    if coding == "rgb":
        (root / "classes.csv").write_text("name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in FOLDER_CLASSES))
    if layout == "lists":
        (root / "splits").mkdir()
        for split, members in splits.items():
            (root / "splits" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return root


def make_camvid(root: Path, counts=(("train", 8), ("val", 3), ("test", 3)), size=(48, 36), seed: int = 0) -> Path:
    """SegNet's CamVid layout: split/NAME.png photos, splitannot/NAME.png labels 0..11 (11 void),
    list files holding another machine's absolute paths, as the real ones do."""
    rng = np.random.default_rng(seed)
    for split, count in counts:
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for index in range(count):
            name = f"Seq01_{split}{index:04d}"
            labels = np.zeros((size[1], size[0]), dtype=np.uint8)
            labels[: size[1] // 3] = 0  # sky on top, road below, a car blob, some void
            labels[size[1] // 3 :] = 3
            labels[blob_mask(rng, size[1], size[0]) == 1] = 8
            labels[-2:, :4] = 11
            image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            image[labels == 0], image[labels == 3], image[labels == 8] = (200, 200, 220), (90, 60, 90), (40, 10, 120)
            Image.fromarray(image).save(root / split / f"{name}.png")
            Image.fromarray(labels, mode="L").save(root / f"{split}annot" / f"{name}.png")
            lines.append(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
