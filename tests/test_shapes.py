import hashlib

import numpy as np
import pytest
import torch

from src.data.shapes import ShapesDataModule


def make(variant="binary", **kwargs):
    num_classes = 2 if variant == "binary" else 4
    defaults = dict(
        variant=variant,
        num_classes=num_classes,
        class_names=[str(k) for k in range(num_classes)],
        num_train=40,
        num_val=20,
        num_test=20,
        image_size=32,
        batch_size=8,
    )
    return ShapesDataModule(**{**defaults, **kwargs})


def digests(images: np.ndarray) -> set[str]:
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in images}


def test_same_seed_same_pixels_and_other_seed_other_pixels():
    first, second, other = make().load_split("train"), make().load_split("train"), make(seed=7).load_split("train")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.masks, second.masks)
    assert not np.array_equal(first.images, other.images)


def test_splits_never_share_an_image():
    dm = make()
    splits = [digests(dm.load_split(split).images) for split in ("train", "val", "test")]
    assert [len(s) for s in splits] == [40, 20, 20]
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])


def test_binary_masks_are_foreground_and_background():
    masks = make().load_split("train").masks
    assert set(np.unique(masks)) == {0, 1}
    foreground = masks.mean()
    assert 0.05 < foreground < 0.6


def test_multiclass_masks_use_one_class_per_shape_kind():
    masks = make("multiclass", num_train=60).load_split("train").masks
    assert set(np.unique(masks)) == {0, 1, 2, 3}


def test_items_follow_the_contract():
    dm = make()
    dm.setup("fit")
    item = dm.datasets["train"][0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 32)
    assert item["mask"].dtype == torch.int64 and item["mask"].shape == (32, 32)
    encoded = next(iter(dm.train_dataloader()))  # loaders carry uint8; normalised after transfer
    assert encoded["image"].dtype == torch.uint8 and encoded["mask"].dtype == torch.uint8
    batch = dm.on_after_batch_transfer(encoded, 0)
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (8, 3, 32, 32)
    assert batch["mask"].dtype == torch.int64 and batch["mask"].shape == (8, 32, 32)
    assert len(batch["name"]) == 8 and batch["name"][0].startswith("shapes_train_")
    # Normalised: roughly zero-centred, not 0..255 or 0..1.
    assert -1.5 < batch["image"].mean() < 1.5 and batch["image"].min() < 0


def test_wrong_class_count_for_variant_names_the_key():
    with pytest.raises(ValueError, match="data.num_classes"):
        make("multiclass", num_classes=2, class_names=["a", "b"])
