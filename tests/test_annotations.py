"""data=coco and data=labelme: masks drawn from annotation-tool exports, checked against the class
PNGs labelme itself rendered from the same polygons (../shared/data/labelme, real tool output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.annotations import CocoDataModule, LabelmeDataModule
from src.data.files import DatasetError
from tests.conftest import SHARED_DATA, run_cli, tiny

LABELME = SHARED_DATA / "labelme"
FRACTIONS = {"val_fraction": 0.34, "test_fraction": 0.34}  # three photos: one for each split


def every_sample(dm):
    return [sample for split in ("train", "val", "test") for sample in dm.list_split(split)]


def labelme_png(example: str, name: str) -> np.ndarray:
    return np.array(Image.open(LABELME / example / "data_dataset_voc" / "SegmentationClass" / f"{Path(name).name}.png"))


def test_coco_json_of_labelmes_photos_agrees_with_labelmes_class_pngs(tmp_path):
    dm = CocoDataModule(root=str(LABELME / "instance_segmentation" / "data_dataset_coco"), image_size=64,
                        cache_dir=str(tmp_path), **FRACTIONS)  # fmt: skip
    assert dm.num_classes == 21 and dm.class_names[:2] == ["background", "aeroplane"]
    samples = every_sample(dm)
    assert sorted(s.name for s in samples) == ["2011_000003", "2011_000006", "2011_000025"]
    for sample in samples:
        _, mask = dm.read_sample(sample)
        truth = labelme_png("instance_segmentation", sample.name)
        # labelme2coco leaves __ignore__ regions out of the COCO file: compare where labelme drew a class.
        drawn = truth != 255
        assert (mask[drawn] == truth[drawn]).mean() >= 0.99, sample.name
        assert set(np.unique(truth[drawn])) == set(np.unique(mask[drawn]))


@pytest.mark.parametrize("example", ["instance_segmentation", "semantic_segmentation"])
def test_labelme_json_files_agree_with_labelmes_own_class_pngs(example, tmp_path):
    dm = LabelmeDataModule(root=str(LABELME / example / "data_annotated"), classes=str(LABELME / example / "labels.txt"),
                           image_size=64, cache_dir=str(tmp_path), **FRACTIONS)  # fmt: skip
    assert dm.num_classes == 21 and dm.class_names[0] == "_background_"
    for sample in every_sample(dm):
        _, mask = dm.read_sample(sample)
        truth = labelme_png(example, sample.name)
        assert (mask == truth).mean() >= 0.99, sample.name  # __ignore__ regions included: both are 255 there


def write_coco(folder: Path, annotations: list[dict], images: int = 1, size=(20, 30)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    for index in range(images):
        Image.fromarray(np.full((height, width, 3), 40 * index, np.uint8)).save(folder / f"im{index}.png")
    document = {
        "images": [{"id": k, "file_name": f"im{k}.png", "height": height, "width": width} for k in range(images)],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [dict(a, id=k, image_id=a.get("image_id", 0)) for k, a in enumerate(annotations)],
    }
    (folder / "annotations.json").write_text(json.dumps(document))
    return folder


def test_coco_polygons_and_both_rle_codings_with_the_last_annotation_on_top(tmp_path):
    from pycocotools import mask as coco_mask

    block = np.zeros((20, 30), np.uint8, order="F")
    block[10:15, 20:28] = 1
    compressed = coco_mask.encode(block)
    compressed["counts"] = compressed["counts"].decode()  # as JSON files hold it
    column_major = block.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], column_major, [1 - column_major[-1]]])))
    uncompressed = {"size": [20, 30], "counts": np.diff(np.concatenate([[0], changes])).tolist()}
    root = write_coco(tmp_path / "coco", [
        {"category_id": 3, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "iscrowd": 0},  # cat: x, y in 0..10
        {"category_id": 7, "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]], "iscrowd": 0},  # dog over its corner
        {"category_id": 7, "segmentation": compressed, "iscrowd": 0},
        {"category_id": 3, "segmentation": uncompressed, "iscrowd": 1},  # the same block again: cat, on top
    ])  # fmt: skip
    for crowd, block_class in (("class", 1), ("ignore", 255)):
        dm = CocoDataModule(root=str(root), crowd=crowd, image_size=16, cache_dir=str(tmp_path / "cache"))
        assert dm.class_names == ["background", "cat", "dog"]
        sample = next(iter(dm.given_splits()["all"].values()))
        mask = dm.sample_mask(sample, 20, 30)
        assert mask[2, 2] == 1 and mask[12, 12] == 2 and mask[7, 7] == 2  # the dog drawn after the cat
        assert (mask[10:15, 20:28] == block_class).all() and mask[19, 29] == 0


def test_coco_images_without_annotations_are_skipped_or_background(tmp_path):
    root = write_coco(tmp_path / "coco", [{"category_id": 3, "segmentation": [[0, 0, 9, 0, 9, 9]], "iscrowd": 0}], images=3)
    skipped = CocoDataModule(root=str(root), image_size=16, cache_dir=str(tmp_path / "cache"))
    assert list(skipped.given_splits()["all"]) == ["im0"]
    kept = CocoDataModule(root=str(root), unannotated="background", image_size=16, cache_dir=str(tmp_path / "cache"))
    samples = kept.given_splits()["all"]
    assert list(samples) == ["im0", "im1", "im2"] and not kept.sample_mask(samples["im2"], 20, 30).any()


def test_coco_category_ids_kept_and_a_split_per_file(tmp_path):
    root = write_coco(tmp_path / "coco", [{"category_id": 7, "segmentation": [[0, 0, 9, 0, 9, 9]], "iscrowd": 0}], images=2)
    (root / "val.json").write_text((root / "annotations.json").read_text())
    dm = CocoDataModule(root=str(root), annotations={"train": "annotations.json", "val": "val.json"}, category_ids=True,
                        image_size=16, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert dm.num_classes == 8 and dm.class_names[3] == "cat" and dm.class_names[7] == "dog"
    assert [s.name for s in dm.list_split("val")] == ["im0"] and dm.list_split("test") == dm.list_split("val")
    assert dm.sample_mask(dm.list_split("train")[0], 20, 30).max() == 7


def test_labelme_shapes_rectangles_circles_lines_and_points_and_an_unknown_label(tmp_path):
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "a.jpg")
    shapes = [
        {"label": "box", "shape_type": "rectangle", "points": [[30, 30], [10, 10]]},
        {"label": "ball", "shape_type": "circle", "points": [[45, 20], [45, 25]]},
        {"label": "wire", "shape_type": "line", "points": [[0, 35], [59, 35]]},
        {"label": "ball", "shape_type": "point", "points": [[5, 5]]},
        {"label": "__ignore__", "shape_type": "polygon", "points": [[50, 0], [59, 0], [59, 5]]},
    ]
    (tmp_path / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "a.jpg", "imageHeight": 40, "imageWidth": 60}))
    dm = LabelmeDataModule(root=str(tmp_path), classes=["background", "box", "ball", "wire"], line_width=3, image_size=16,
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
    sample = dm.given_splits()["all"]["a"]
    mask = dm.sample_mask(sample, 40, 60)
    assert mask[20, 20] == 1 and mask[20, 45] == 2 and mask[5, 5] == 2 and mask[35, 30] == 3 and mask[34, 30] == 3
    assert mask[1, 58] == 255 and mask[0, 30] == 0 and mask[25, 45] == 2 and mask[26, 45] == 0
    found = LabelmeDataModule(root=str(tmp_path), image_size=16, cache_dir=str(tmp_path / "cache"))
    assert found.class_names == ["_background_", "ball", "box", "wire"]  # the labels found, background first
    strict = LabelmeDataModule(root=str(tmp_path), classes=["background", "box"], image_size=16, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"a.json: label 'ball' is not in the class list \['background', 'box'\]"):
        strict.sample_mask(sample, 40, 60)


@pytest.mark.slow  # two training runs and a data check from the command line: CI runs them with -m slow
def test_training_and_the_data_check_run_on_coco_and_labelme_exports_from_the_command_line(tmp_path):
    sources = {
        "coco": [f"data.root={LABELME / 'instance_segmentation' / 'data_dataset_coco'}", "data.annotations=annotations.json"],
        "labelme": [f"data.root={LABELME / 'semantic_segmentation' / 'data_annotated'}",
                    f"data.classes={LABELME / 'semantic_segmentation' / 'labels.txt'}"],
    }  # fmt: skip
    for kind, source in sources.items():
        data = [f"data={kind}", *source, "data.val_fraction=0.34", "data.test_fraction=0.34", f"data.cache_dir={tmp_path / 'cache'}"]
        trained = run_cli("src.train", *tiny(data), "debug=fast", f"hydra.run.dir={tmp_path / kind}", cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr[-3000:]
        metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
        assert metrics["test"] and metrics["epochs_completed"] >= 1
        checked = run_cli("src.data.check", *data, f"hydra.run.dir={tmp_path / (kind + '_check')}", cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr[-3000:]
        report = json.loads((tmp_path / (kind + "_check") / "data_check.json").read_text())
        assert report["counts"] == {"train": 1, "val": 1, "test": 1} and (tmp_path / (kind + "_check") / "samples.png").is_file()
