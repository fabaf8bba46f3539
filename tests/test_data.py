"""Real-format datasets: layouts, splits, mask coding, augmentation, the cache, bad input, data check."""

import json
import os
import urllib.error

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from src.data.items import ArraySegmentationDataset
from src.data.splits import SplitArrays
from src.data.files import DatasetError
from tests.conftest import ROOT, SHARED_DATA, compose_config, run_cli
from tests.fixtures import make_cifar, make_pets, make_satellite, make_voc

MAKERS = {"pets": make_pets, "voc": make_voc, "satellite": make_satellite}


def datamodule(name: str, root, tmp_path, *overrides: str):
    cfg = compose_config(
        "train",
        [f"data={name}", f"data.root={root}", "data.image_size=32", "data.batch_size=4", "data.num_workers=0", *overrides],
        tmp_path,
    )
    return instantiate(cfg.data, _convert_="all")


def fixture(name: str, tmp_path):
    return MAKERS[name](tmp_path / name)


def expected_values(name: str) -> set[int]:
    return {"pets": {0, 1}, "voc": set(range(21)) | {255}, "satellite": set(range(7))}[name]


@pytest.mark.parametrize("name", ["pets", "voc", "satellite"])
def test_splits_are_disjoint_cover_the_lists_and_masks_hold_known_values(name, tmp_path):
    dm = datamodule(name, fixture(name, tmp_path), tmp_path)
    dm.setup()
    names = {split: set(dm.datasets[split].names) for split in ("train", "val", "test")}
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"]) and not (names["val"] & names["test"])
    total = {"pets": 28, "voc": 28, "satellite": 20}[name]
    assert sum(len(n) for n in names.values()) == total
    for split in ("train", "val", "test"):
        masks = np.asarray(dm.datasets[split].split.masks)
        assert set(np.unique(masks)) <= expected_values(name)
        item = dm.datasets[split][0]
        assert item["image"].shape == (3, 32, 32) and item["mask"].dtype == torch.int64


def test_pets_counts_follow_the_list_files(tmp_path):
    dm = datamodule("pets", fixture("pets", tmp_path), tmp_path, "data.val_fraction=0.25")
    dm.setup()
    assert (len(dm.datasets["train"]), len(dm.datasets["val"]), len(dm.datasets["test"])) == (15, 5, 8)


@pytest.mark.parametrize("border, value", [("foreground", 1), ("background", 0), ("ignore", 255)])
def test_pets_border_coding(border, value, tmp_path):
    root = fixture("pets", tmp_path)
    dm = datamodule("pets", root, tmp_path, f"data.border={border}")
    sample = dm.list_split("test")[0]
    trimap = np.asarray(Image.open(sample.mask))
    _, mask = dm.read_sample(sample)
    assert (mask[trimap == 3] == value).all()
    assert (mask[trimap == 1] == 1).all() and (mask[trimap == 2] == 0).all()


def test_pets_grey_and_alpha_images_are_read_as_rgb(tmp_path):
    dm = datamodule("pets", fixture("pets", tmp_path), tmp_path)
    samples = {s.name: s for s in dm.list_split("train") + dm.list_split("val")}
    for name in ("Breed_2", "Breed_3"):  # written grey, and RGBA PNG data under a .jpg name
        image, _ = dm.read_sample(samples[name])
        assert image.shape[2] == 3


def test_satellite_noisy_colours_are_thresholded_to_classes(tmp_path):
    root = fixture("satellite", tmp_path)
    dm = datamodule("satellite", root, tmp_path)
    sample = dm.list_split("train")[0]
    raw = np.asarray(Image.open(sample.mask))
    _, mask = dm.read_sample(sample)
    assert not np.isin(raw, [0, 255]).all()  # the fixture's colours are off by a few levels
    water = (raw[..., 0] < 128) & (raw[..., 1] < 128) & (raw[..., 2] >= 128)
    assert (mask[water] == 4).all()


@pytest.mark.skipif(not (SHARED_DATA / "pets").is_dir(), reason="../shared/data/pets is not present")
def test_shared_pets_subset_reads_with_list_counts(tmp_path):
    root = SHARED_DATA / "pets"
    dm = datamodule("pets", root, tmp_path, f"data.cache_dir={tmp_path / 'cache'}")
    dm.setup()
    trainval = len((root / "annotations" / "trainval.txt").read_text().split("\n")) - 1
    test = len((root / "annotations" / "test.txt").read_text().split("\n")) - 1
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == trainval == 255
    assert len(dm.datasets["test"]) == test == 102
    assert set(np.unique(np.asarray(dm.datasets["train"].split.masks))) == {0, 1}


def test_augmented_copies_double_the_epoch_and_keep_image_and_mask_aligned(tmp_path):
    rng = np.random.default_rng(0)
    masks = np.stack([np.pad(np.ones((24, 24), np.uint8), 20) for _ in range(6)])  # 64 x 64, square in the middle
    masks = np.stack([np.roll(m, (rng.integers(-8, 8), rng.integers(-8, 8)), axis=(0, 1)) for m in masks])
    from tests.fixtures import red_on_blue

    images = np.stack([red_on_blue(m, rng) for m in masks])
    cfg = compose_config("train", ["aug=combine"], tmp_path)
    dataset = ArraySegmentationDataset(SplitArrays(images, masks, [str(i) for i in range(6)]), instantiate(cfg.aug), n_aug=1)
    assert len(dataset) == 12
    changed = 0
    for index in range(len(dataset)):
        item = dataset[index]
        image, mask = item["image"], item["mask"]
        counted = mask != 255
        foreground_by_colour = image[0] > image[2]  # red over blue, normalisation keeps the order closely
        # Away from the square's edge, where interpolation blends the colours:
        eroded = torch.nn.functional.max_pool2d((mask == 1).float()[None, None], 5, 1, 2)[0, 0] == (
            -torch.nn.functional.max_pool2d(-(mask == 1).float()[None, None], 5, 1, 2)[0, 0]
        )
        agree = (foreground_by_colour == (mask == 1)) | ~counted | ~eroded
        assert agree.float().mean() > 0.999, f"item {index}: image and mask disagree"
        if index >= 6 and not torch.equal(mask, torch.from_numpy(masks[index - 6]).long()):
            changed += 1
    assert changed >= 3  # the copies really are augmented


def test_datamodule_train_loader_yields_one_plus_n_aug_times_n(tmp_path):
    dm = datamodule("pets", fixture("pets", tmp_path), tmp_path, "aug=combine", "data.n_aug=1")
    dm.setup("fit")
    n = len(dm.datasets["train"].names)
    assert sum(len(batch["name"]) for batch in dm.train_dataloader()) == 2 * n
    assert sum(len(batch["name"]) for batch in dm.val_dataloader()) == len(dm.datasets["val"].names)  # never augmented


def test_training_order_and_augmentation_depend_only_on_seed_and_epoch(tmp_path):
    root = fixture("pets", tmp_path)

    def epoch_batches(epoch: int) -> list[dict]:
        """The batches of one epoch from a new datamodule, as a resumed run's new process makes them."""
        dm = datamodule("pets", root, tmp_path, "aug=combine", "data.batch_size=2")
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return list(loader)

    first, again, other = epoch_batches(1), epoch_batches(1), epoch_batches(2)
    names = lambda batches: [name for batch in batches for name in batch["name"]]  # noqa: E731
    assert names(first) == names(again)  # e.g. after a resume at epoch 1
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))  # same augmentations
    assert names(first) != names(other) and sorted(names(first)) == sorted(names(other))


def test_flip_allows_at_most_two_copies(tmp_path):
    with pytest.raises(Exception, match="n_aug=3"):
        datamodule("pets", fixture("pets", tmp_path), tmp_path, "aug=flip", "data.n_aug=3")


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path):
    root = fixture("pets", tmp_path)
    cache = tmp_path / "cache"
    datamodule("pets", root, tmp_path, f"data.cache_dir={cache}").setup("test")
    first = sorted(p.name for p in cache.iterdir())
    datamodule("pets", root, tmp_path, f"data.cache_dir={cache}").setup("test")
    assert sorted(p.name for p in cache.iterdir()) == first  # reused
    mask = root / "annotations" / "trimaps" / "Breed_21.png"
    Image.fromarray(np.full((48, 56), 2, np.uint8), mode="L").save(mask)
    os.utime(mask, ns=(10**18, 10**18))
    dm = datamodule("pets", root, tmp_path, f"data.cache_dir={cache}")
    dm.setup("test")
    assert len(list(cache.iterdir())) == len(first) + 1  # a new key for the changed split
    assert (np.asarray(dm.datasets["test"].split.masks)[0] == 0).all()


@pytest.mark.parametrize("trimap, message", [
    (np.full((48, 56), 7, np.uint8), r"Breed_21.png: trimap values \[7\]; 1 \(pet\), 2 \(background\), 3 \(border\) expected"),
    (np.full((48, 56, 3), 2, np.uint8), r"Breed_21.png: a trimap is a one-channel PNG .*this one has colour channels"),
])
def test_a_trimap_that_is_not_one_is_named(tmp_path, trimap, message):
    root = fixture("pets", tmp_path)
    Image.fromarray(trimap).save(root / "annotations" / "trimaps" / "Breed_21.png")
    with pytest.raises(ValueError, match=message):
        datamodule("pets", root, tmp_path, f"data.cache_dir={tmp_path / 'cache'}").setup("test")


def test_plain_decoding_path_gives_the_cached_items(tmp_path):
    root = fixture("voc", tmp_path)
    cached = datamodule("voc", root, tmp_path, f"data.cache_dir={tmp_path / 'cache'}")
    plain = datamodule("voc", root, tmp_path, "data.cache=false")
    cached.setup("test"), plain.setup("test")
    for index in (0, 3):
        a, b = cached.datasets["test"][index], plain.datasets["test"][index]
        assert a["name"] == b["name"] and torch.equal(a["mask"], b["mask"]) and torch.allclose(a["image"], b["image"])


def test_cifar_colour_grey_input_and_palette_targets(tmp_path):
    root = make_cifar(tmp_path / "cifar-10-batches-py")
    dm = datamodule("cifar_colour", root, tmp_path, "data.num_classes=8", "data.classes=[horse,cat]")
    dm.setup()
    item = dm.datasets["train"][0]
    assert item["image"].shape == (1, 32, 32) and item["mask"].max() < 8
    assert dm.palette.shape == (8, 3)
    assert len(dm.datasets["test"].names) < 20  # only horses and cats of the 20 test images


def test_download_without_network_says_where_to_place_files(tmp_path, monkeypatch):
    import torchvision.datasets.oxford_iiit_pet as pets_module

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pets_module, "download_and_extract_archive", no_network)
    dm = datamodule("pets", tmp_path / "data" / "oxford-iiit-pet", tmp_path, "data.download=true")
    with pytest.raises(DatasetError, match=r"could not download Oxford-IIIT Pet .*oxford-iiit-pet holds images/"):
        dm.prepare_data()


# --- bad input: every error names the file --------------------------------------------------


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere")):
        datamodule("pets", tmp_path / "nowhere", tmp_path).setup("fit")


def test_image_without_mask_is_named(tmp_path):
    root = fixture("pets", tmp_path)
    (root / "annotations" / "trimaps" / "Breed_4.png").unlink()
    with pytest.raises(DatasetError, match="Breed_4.png"):
        datamodule("pets", root, tmp_path).setup()


def test_mask_of_another_size_is_named(tmp_path):
    root = fixture("voc", tmp_path)
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(root / "SegmentationClass" / "2007_000003.png")
    with pytest.raises(DatasetError, match=r"2007_000003.png: mask is 10x10 but its image 2007_000003.jpg is 50x40"):
        datamodule("voc", root, tmp_path).setup()


def test_unknown_class_value_is_named(tmp_path):
    root = fixture("pets", tmp_path)
    Image.fromarray(np.full((48, 56), 7, np.uint8), mode="L").save(root / "annotations" / "trimaps" / "Breed_5.png")
    with pytest.raises(DatasetError, match=r"Breed_5.png: trimap values \[7\]"):
        datamodule("pets", root, tmp_path).setup()


def test_unknown_colour_is_named(tmp_path):
    root = fixture("satellite", tmp_path)
    Image.fromarray(np.full((48, 48, 3), (250, 10, 10), np.uint8)).save(root / "0003_mask.png")
    with pytest.raises(DatasetError, match="0003_mask.png: 2304 pixels of a colour that is no class"):
        datamodule("satellite", root, tmp_path).setup()


def test_truncated_jpeg_is_named(tmp_path):
    root = fixture("pets", tmp_path)
    image = root / "images" / "Breed_6.jpg"
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"Breed_6.jpg: unreadable image"):
        datamodule("pets", root, tmp_path).setup()


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pets", "voc", "satellite"])
def test_fast_training_run_on_each_dataset(name, train_run, tmp_path):
    root = fixture(name, tmp_path)
    _, metrics = train_run(f"data={name}", f"data.root={root}", "data.num_workers=0", "debug=fast")
    assert 0 <= metrics["test"]["test/miou"] <= 1


@pytest.mark.parametrize("model", ["pool_upsample_net", "conv_transpose_net", "colour_unet"])
def test_colourisation_nets_train_on_cifar_colour(model, train_run, tmp_path):
    root = make_cifar(tmp_path / "cifar-10-batches-py")
    run_dir, metrics = train_run(f"model={model}", "data=cifar_colour", f"data.root={root}", "data.num_classes=8", "debug=fast")
    # data=cifar_colour selects the colourisation task: pixel accuracy is the score and the monitor.
    assert metrics["monitor"] == "val/acc" and {"test/loss", "test/acc"} == set(metrics["test"])
    grid = np.asarray(Image.open(run_dir / "images" / "val_masks.png").convert("RGB")).astype(int)
    grey_input = grid[:32, :32]
    assert (grey_input[..., 0] == grey_input[..., 1]).all() and (grey_input[..., 1] == grey_input[..., 2]).all()
    true_colours = grid[:32, 34:66]
    assert (true_colours.max(axis=2) - true_colours.min(axis=2)).max() > 0  # in colour, not grey


@pytest.mark.slow
def test_data_check_passes_on_a_good_folder_and_fails_naming_the_bad_file(tmp_path):
    root = fixture("pets", tmp_path)
    good = run_cli("src.data.check", "data=pets", f"data.root={root}", f"hydra.run.dir={tmp_path / 'good'}", cwd=tmp_path)
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    report = json.loads((tmp_path / "good" / "data_check.json").read_text())
    assert report["counts"] == {"train": 18, "val": 2, "test": 8} and not report["problems"]
    assert 0 < report["class_pixel_frequency"]["pet"] < 1
    assert (tmp_path / "good" / "samples.png").is_file()

    (root / "images" / "Breed_7.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(root / "annotations" / "trimaps" / "Stray_1.png")
    bad = run_cli("src.data.check", "data=pets", f"data.root={root}", f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert bad.returncode == 1
    assert "Breed_7.jpg: unreadable image" in bad.stderr and "trimap without image" in bad.stderr  # errors on stderr
    assert "trimap without image" in (tmp_path / "bad" / "check.log").read_text()


@pytest.mark.parametrize("name", ["voc", "satellite", "shared_pets"])
def test_data_check_finds_no_problem_in_good_folders(name, tmp_path):
    from src.data.check import check

    if name == "shared_pets":
        if not (SHARED_DATA / "pets").is_dir():
            pytest.skip("../shared/data/pets is not present")
        dm = datamodule("pets", SHARED_DATA / "pets", tmp_path)
    else:
        dm = datamodule(name, fixture(name, tmp_path), tmp_path)
    report = check(dm, grid_samples=4)
    assert report["problems"] == []
    assert sum(report["counts"].values()) == {"voc": 28, "satellite": 20, "shared_pets": 357}[name]
    assert len(report["cells"]) == 4
    assert sum(report["class_pixel_frequency"].values()) == pytest.approx(1.0)


def test_dataset_configs_keep_only_their_own_keys_the_shared_ones_come_from_conf_data_common():
    import yaml

    conf = ROOT / "conf" / "data"
    base = yaml.safe_load((conf / "common" / "base.yaml").read_text())
    files = {**base, **yaml.safe_load((conf / "common" / "files.yaml").read_text())}
    files.pop("defaults")
    for path in sorted(conf.glob("*.yaml")):
        own = yaml.safe_load(path.read_text())
        shared = files if "common/files@_here_" in own.get("defaults", []) else base
        repeated = {key for key, value in own.items() if key in shared and shared[key] == value}
        assert not repeated, f"{path.name} repeats {sorted(repeated)} with the value conf/data/common already gives"
        assert any(str(d).startswith(("common/", "shapes")) for d in own["defaults"]), path.name
