"""LightningModules: freezing for fine-tuning, and the colourisation and classification tasks."""

import functools

import pytest
import torch

from src.losses import CrossEntropyLoss
from src.models.unet import UNet
from src.tasks.segmentation import SegmentationTask


def segmentation_task(**kwargs) -> SegmentationTask:
    torch.manual_seed(0)
    net = UNet(in_channels=3, num_classes=2, base_width=4, depth=2)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return SegmentationTask(net, CrossEntropyLoss(), optimizer, num_classes=2, **kwargs)


def test_freeze_keeps_named_parts_fixed_and_trains_the_rest():
    task = segmentation_task(freeze=["stem", "down.0"])
    frozen = {name: p.clone() for name, p in task.net.named_parameters() if name.startswith(("stem.", "down.0."))}
    stats = {name: b.clone() for name, b in task.net.named_buffers() if name.startswith("stem.") and "running" in name}
    head = task.net.head.weight.clone()
    optimizer = task.configure_optimizers()  # no scheduler: the optimizer itself
    assert {id(p) for group in optimizer.param_groups for p in group["params"]}.isdisjoint(
        id(p) for p in task.net.stem.parameters()
    )
    task.train()
    task.on_train_epoch_start()  # frozen parts back in eval mode
    batch = {"image": torch.randn(2, 3, 16, 16), "mask": torch.randint(0, 2, (2, 16, 16))}
    task.loss(task(batch["image"]), batch["mask"]).backward()
    optimizer.step()
    for name, before in frozen.items():
        assert torch.equal(dict(task.net.named_parameters())[name], before), name
    for name, before in stats.items():
        assert torch.equal(dict(task.net.named_buffers())[name], before), f"{name}: frozen batch norm statistics moved"
    assert not torch.equal(task.net.head.weight, head)


def test_freeze_of_an_unknown_part_names_the_key_and_the_parts():
    with pytest.raises(ValueError, match=r"task.freeze: UNet has no submodule 'encoder'.*\['stem', 'down', 'up', 'head'\]"):
        segmentation_task(freeze=["encoder"])
