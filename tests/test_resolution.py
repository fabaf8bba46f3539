"""Resolution: data.resize policies, crop training, batches of mixed sizes, scoring at each image's own size."""

import csv

import pytest
import torch

from src.data.splits import RaggedArrays
from tests.fixtures import make_folder, make_voc


def folder_module(root, **kwargs):
    from src.data.folder import FolderDataModule

    return FolderDataModule(root=str(root), image_size=32, batch_size=4, cache_dir=str(root.parent / "cache"), **kwargs)


@pytest.mark.parametrize("policy", ["short_side", "none"])
def test_items_keep_their_aspect_and_are_cached_without_squashing(tmp_path, policy):
    from src.data.files import read_image

    root = make_folder(tmp_path / "data", count=12)
    dm = folder_module(root, resize=policy, val_fraction=0.4)
    dm.setup("fit")
    arrays = dm.datasets["val"].split
    assert isinstance(arrays.images, RaggedArrays)
    for name, image, mask in zip(arrays.names, arrays.images, arrays.masks):
        height, width = read_image(root / "images" / f"{name}.jpg").shape[:2]
        assert image.shape[:2] == mask.shape
        if policy == "none":
            assert image.shape[:2] == (height, width)
        else:
            assert min(image.shape[:2]) == 32 and abs(image.shape[0] / image.shape[1] - height / width) < 0.05
    batch = next(iter(dm.val_dataloader()))  # mixed sizes: padded, each item's size kept
    assert batch["image"].shape[0] == len(batch["name"]) and "image_size" in batch
    for mask, (height, width) in zip(batch["mask"], batch["mask_size"].tolist()):
        assert (mask[height:] == 255).all() and (mask[:, width:] == 255).all()


def test_crop_training_gives_batches_of_the_crop_size(tmp_path):
    from src.data.transforms import RandomAugmentation
    import albumentations as A

    root = make_folder(tmp_path / "data", count=12)
    aug = RandomAugmentation(A.Compose([A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0), A.HorizontalFlip(p=0.5)]))
    dm = folder_module(root, resize="short_side", crop_size=24, aug=aug)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[-2:] == (24, 24) and batch["mask"].shape[-2:] == (24, 24)


def test_scale_crop_training_runs_end_to_end(train_run, tmp_path):
    root = make_folder(tmp_path / "data", count=12)
    _, metrics = train_run("data=folder", f"data.root={root}", "data.resize=short_side", "data.crop_size=32",
                           "aug=scale_crop", "debug=fast", f"data.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert 0 <= metrics["test"]["test/miou"] <= 1


def test_voc_scored_at_the_original_resolution_counts_every_pixel_of_each_test_image(train_run, tmp_path):
    root = make_voc(tmp_path / "VOC2012", train=8, val=3, size=(500, 375))
    run_dir, metrics = train_run("data=voc", f"data.root={root}", "data.eval_resolution=original", "debug=fast",
                                 "trainer.limit_test_batches=null", f"data.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    with (run_dir / "images" / "per_class.csv").open() as file:
        counted = sum(int(row["true"]) for row in csv.DictReader(file))
    assert counted == 3 * (500 * 375 - 500)  # every pixel of the three 500 x 375 masks, but their void top row
    assert 0 <= metrics["test"]["test/miou"] <= 1


def test_logits_are_resized_to_each_masks_size_before_scoring():
    from src.tasks.inference import logits_at_mask_size

    logits = torch.zeros(2, 2, 40, 40)
    logits[:, 1, :20] = 5  # class 1 on the top half of each image's own area
    out = logits_at_mask_size(logits, torch.tensor([[40, 40], [20, 30]]), torch.tensor([[80, 60], [40, 60]]), (80, 60))
    assert out.shape == (2, 2, 80, 60)
    predicted = out.argmax(1)
    assert (predicted[0, :39] == 1).all() and (predicted[0, 41:] == 0).all()
    assert (predicted[1, :40] == 1).all() and (out[1, :, 40:] == 0).all()  # beyond the mask: padding
