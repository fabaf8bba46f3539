"""data=folder: a researcher's own images and masks, in the layouts people keep them."""

import json

import numpy as np
import pytest
from PIL import Image

from src.data.files import DatasetError
from tests.conftest import run_cli, tiny
from tests.fixtures import make_folder


def folder_module(root, **kwargs):
    from src.data.folder import FolderDataModule

    return FolderDataModule(root=str(root), image_size=32, batch_size=4, cache_dir=str(root.parent / "cache"), **kwargs)


def test_training_on_a_folder_of_rgb_coded_masks_of_mixed_sizes_runs_from_one_command(tmp_path):
    root = make_folder(tmp_path / "my_data", coding="rgb")
    result = run_cli("src.train", "data=folder", f"data.root={root}", "debug=fast", *tiny(["data=folder"]), "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"test/iou_background", "test/iou_road", "test/iou_tree"} <= metrics["test"].keys()
    assert (tmp_path / "run" / "images" / "val_masks.png").is_file()


@pytest.mark.parametrize("layout", ["flat", "folders", "lists"])
def test_index_masks_and_every_split_layout(train_run, tmp_path, layout):
    root = make_folder(tmp_path / "my_data", coding="index", layout=layout)
    dm = folder_module(root, num_classes=3, class_names=["background", "road", "tree"])
    names = {split: {s.name for s in dm.list_split(split)} for split in ("train", "val", "test")}
    assert all(names.values()) and not (names["train"] & names["val"]) and not (names["train"] & names["test"])
    if layout != "flat":  # the user's own splits are kept
        assert names["test"] == {f"photo_{i:03d}" for i in range(20, 24)}
    _, metrics = train_run("data=folder", f"data.root={root}", "data.num_classes=3",
                           "data.class_names=[background,road,tree]", "debug=fast", f"data.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert 0 <= metrics["test"]["test/miou"] <= 1


def test_rgb_masks_decode_to_the_class_list_ids(tmp_path):
    root = make_folder(tmp_path / "my_data", coding="rgb", count=6)
    dm = folder_module(root)
    assert dm.num_classes == 3 and dm.class_names == ["background", "road", "tree"]
    sample = dm.list_split("train")[0]
    _, ids = dm.read_sample(sample)
    rgb = np.asarray(Image.open(sample.mask).convert("RGB"))
    assert set(np.unique(ids)) == {0, 1, 2}
    assert (rgb[ids == 1] == (128, 64, 128)).all() and (rgb[ids == 2] == (0, 200, 0)).all()


def test_a_mask_colour_missing_from_the_class_list_is_named_with_its_file(tmp_path):
    root = make_folder(tmp_path / "my_data", coding="rgb", count=6)
    mask = root / "masks" / "photo_001.png"
    pixels = np.asarray(Image.open(mask).convert("RGB")).copy()
    pixels[0, 0] = (250, 10, 10)
    Image.fromarray(pixels).save(mask)
    with pytest.raises(DatasetError, match=r"photo_001.png: colours \(250, 10, 10\) are no class's colour; known: background"):
        folder_module(root).setup("fit")


def test_images_without_masks_and_a_missing_class_list_are_named(tmp_path):
    root = make_folder(tmp_path / "my_data", coding="index", count=6)
    (root / "masks" / "photo_002.png").unlink()
    with pytest.raises(DatasetError, match=r"images without a mask .*photo_002.jpg"):
        folder_module(root, num_classes=3).list_split("train")
    with pytest.raises(ValueError, match="no class list .*data.classes.*classes.csv.*data.num_classes"):
        folder_module(root)


def test_data_check_and_its_grid_work_on_a_folder(tmp_path):
    from src.data.check import check

    root = make_folder(tmp_path / "my_data", coding="rgb", count=12)
    report = check(folder_module(root))
    assert not report["problems"] and sum(report["counts"].values()) == 12
    assert report["cells"] and report["class_pixel_frequency"]["tree"] > 0.1
