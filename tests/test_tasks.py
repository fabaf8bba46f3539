"""LightningModules: freezing for fine-tuning, and the colourisation and classification tasks."""

import csv
import functools

import lightning as L
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.data.files import DatasetError
from src.losses import CrossEntropyLoss
from src.models.unet import UNet
from src.tasks.segmentation import SegmentationTask
from tests.fixtures import make_image_folder


def segmentation_task(**kwargs) -> SegmentationTask:
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=2, base_width=4, depth=2)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return SegmentationTask(net, CrossEntropyLoss(), optimizer, num_classes=2, **kwargs)


def test_freeze_keeps_named_parts_fixed_and_trains_the_rest():
    task = segmentation_task(freeze=["net.encoder.stem", "net.encoder.down.0"])
    frozen = {name: p.clone() for name, p in task.net.named_parameters() if name.startswith(("encoder.stem.", "encoder.down.0."))}
    stats = {name: b.clone() for name, b in task.net.named_buffers() if name.startswith("encoder.stem.") and "running" in name}
    head = task.net.head.weight.clone()
    optimizer = task.configure_optimizers()  # no scheduler: the optimizer itself
    assert {id(p) for group in optimizer.param_groups for p in group["params"]}.isdisjoint(
        id(p) for p in task.net.encoder.stem.parameters()
    )
    task.train()  # frozen parts stay in eval mode
    assert not task.net.encoder.stem.training and task.net.decoder.training
    batch = {"image": torch.randn(2, 3, 16, 16), "mask": torch.randint(0, 2, (2, 16, 16))}
    task.loss(task(batch["image"]), batch["mask"]).backward()
    optimizer.step()
    for name, before in frozen.items():
        assert torch.equal(dict(task.net.named_parameters())[name], before), name
    for name, before in stats.items():
        assert torch.equal(dict(task.net.named_buffers())[name], before), f"{name}: frozen batch norm statistics moved"
    assert not torch.equal(task.net.head.weight, head)


def test_freeze_of_an_unknown_part_names_the_key_and_the_parts():
    with pytest.raises(ValueError, match=r"task.freeze: UNet has no submodule 'net.backbone'.*\['net.encoder', 'net.decoder', 'net.head'\]"):
        segmentation_task(freeze=["net.backbone"])


@pytest.mark.parametrize("flat", [False, True], ids=["class-folders", "flat-files"])
def test_image_folder_finds_classes_and_splits_each_class_without_overlap(tmp_path, flat):
    from src.data.image_folder import ImageFolderDataModule

    root = make_image_folder(tmp_path / "images", per_class=10, flat=flat)
    dm = ImageFolderDataModule(root=str(root), image_size=32, batch_size=4, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert dm.class_names == ["circle", "square", "stripes"] and dm.num_classes == 3
    names = {split: set(dm.datasets[split].names) for split in ("train", "val", "test")}
    assert [len(names[s]) for s in ("train", "val", "test")] == [18, 6, 6]  # 6 / 2 / 2 of each class
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    assert sorted(dm.datasets["test"].labels.tolist()) == [0, 0, 1, 1, 2, 2]
    item = dm.datasets["train"][0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0


def test_image_folder_class_count_mismatch_names_the_key(tmp_path):
    from src.data.image_folder import ImageFolderDataModule

    root = make_image_folder(tmp_path / "images", per_class=3)
    with pytest.raises(ValueError, match=r"data.num_classes=50 but .* holds 3 classes .*set data.num_classes=3"):
        ImageFolderDataModule(root=str(root), num_classes=50)
    with pytest.raises(DatasetError, match="image folder not found"):
        ImageFolderDataModule(root=str(tmp_path / "missing"))


def test_classification_run_writes_accuracy_and_the_embedding_plot(train_run, tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=12)
    run_dir, metrics = train_run(
        "task=classification", "model=resnet50_classifier", "data=image_folder", f"data.root={root}",
        "data.image_size=32", "data.batch_size=8", "debug=fast", "trainer.limit_test_batches=null",
    )  # fmt: skip
    assert metrics["monitor"] == "val/acc"
    assert {"test/loss", "test/acc", "test/top5"} == set(metrics["test"])
    assert metrics["test"]["test/top5"] == 1.0  # 3 classes: the true one is always among the top 5
    embedding = Image.open(run_dir / "images" / "embedding.png")
    assert embedding.size[0] > 300
    with (run_dir / "images" / "per_class.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["class"] for row in rows] == ["circle", "square", "stripes"]
    assert sum(int(row["true"]) for row in rows) == 6  # every test image (2 of each class), once
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"test/embedding", "test/confusion_matrix"} <= set(events.Tags()["images"])
    assert not (run_dir / "images" / "val_masks.png").exists()


def test_a_classifier_learns_the_folder_patterns(tmp_path):
    from src.data.image_folder import ImageFolderDataModule
    from src.tasks.classification import ClassificationTask

    torch.manual_seed(0)
    root = make_image_folder(tmp_path / "images", per_class=12)
    dm = ImageFolderDataModule(root=str(root), image_size=32, batch_size=12, val_fraction=0.1, test_fraction=0.25)
    dm.setup()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(128, 3))  # fmt: skip
    task = ClassificationTask(net, torch.nn.CrossEntropyLoss(), functools.partial(torch.optim.Adam, lr=1e-2), num_classes=3)
    trainer = L.Trainer(max_epochs=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    assert task.test_scores["acc"] == 1.0  # 9 unseen images, patterns a small conv net tells apart
    assert task.test_embeddings is None  # a plain Sequential has no features/classify


def test_deeplab_head_only_fine_tuning_optimises_only_the_head():
    from src.models.deeplab import DeepLabV3

    net = DeepLabV3(num_classes=2)
    task = SegmentationTask(net, CrossEntropyLoss(), functools.partial(torch.optim.SGD, lr=0.1), freeze=["net.model.backbone"])
    optimised = {id(p) for group in task.configure_optimizers().param_groups for p in group["params"]}
    names = {id(p): name for name, p in net.named_parameters()}
    assert optimised and all(not names[i].startswith("model.backbone.") for i in optimised)
    assert {names[i].split(".")[1] for i in optimised} == {"classifier"}
    task.train()
    before = net.model.backbone.bn1.running_mean.clone()
    task(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert torch.equal(before, net.model.backbone.bn1.running_mean)  # frozen batch norm keeps its statistics
    assert not net.model.backbone.training and net.model.classifier.training
