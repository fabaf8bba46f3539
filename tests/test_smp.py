"""model=smp: segmentation_models_pytorch's architectures and encoders as seglab nets."""

import functools
import math

import pytest
import torch

from src.models.smp_net import SMPNet

ARCHS = ["Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "PSPNet", "Segformer", "UPerNet"]


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_gives_logits_of_the_input_size_and_finite_gradients(arch, num_classes):
    torch.manual_seed(0)
    net = SMPNet(in_channels=3, num_classes=num_classes, arch=arch, encoder="resnet18").train()
    for size in [(64, 64), (70, 90)]:
        logits = net(torch.randn(2, 3, *size))
        assert logits.shape == (2, num_classes, *size)
    logits.float().square().mean().backward()
    for name, param in net.named_parameters():
        if arch == "PSPNet" and name.startswith(("model.encoder.layer3", "model.encoder.layer4")):
            continue  # PSPNet reads the encoder to depth 3 only: the deeper stages are unused
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_a_transformer_encoder_on_grey_input():
    net = SMPNet(in_channels=1, num_classes=3, arch="Segformer", encoder="mit_b0").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 70, 90)).shape == (1, 3, 70, 90)


def test_offline_encoder_weights_say_what_to_download_and_where(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"model.encoder_weights='imagenet' for resnet18.*smp-hub/resnet18.imagenet.*model.encoder_weights=null"):
        SMPNet(arch="Unet", encoder="resnet18", encoder_weights="imagenet")
    with pytest.raises(ValueError, match=r"model.encoder_weights='foo'.*Available options"):
        SMPNet(arch="Unet", encoder="resnet18", encoder_weights="foo")
    with pytest.raises(ValueError, match="model.arch='Unet3D' is no smp architecture"):
        SMPNet(arch="Unet3D")


def test_the_encoder_freezes_with_the_one_freeze_mechanism():
    from src.losses import CrossEntropyLoss
    from src.tasks.segmentation import SegmentationTask

    net = SMPNet(num_classes=2, arch="FPN", encoder="resnet18")
    task = SegmentationTask(net, CrossEntropyLoss(), functools.partial(torch.optim.SGD, lr=0.1), freeze=["net.model.encoder"])
    optimised = {id(p) for group in task.configure_optimizers().param_groups for p in group["params"]}
    assert optimised and optimised.isdisjoint(id(p) for p in net.model.encoder.parameters())
    assert not task.train().net.model.encoder.training


def test_deeplabv3plus_trains_evaluates_and_predicts(train_run, tmp_path):
    import numpy as np
    from PIL import Image

    from src.compose import load_run
    from src.eval import evaluate
    from src.predict import predict

    _, metrics = train_run("model=smp", "model.arch=DeepLabV3Plus", "model.encoder=resnet18", "debug=fast")
    assert math.isfinite(metrics["test"]["test/loss"])
    summary = evaluate(load_run(metrics["best_checkpoint"], [], tmp_path / "eval", with_task=False)[0])
    assert summary["test"]["test/dice"] == pytest.approx(metrics["test"]["test/dice"], abs=5e-5)
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.full((45, 70, 3), 120, np.uint8)).save(tmp_path / "photos" / "a.png")
    assert predict(metrics["best_checkpoint"], tmp_path / "photos", tmp_path / "out")["written"]
    assert Image.open(tmp_path / "out" / "a_mask.png").size == (70, 45)
