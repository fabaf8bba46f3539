"""Every architecture of conf/model/: shapes, gradients, parameter counts, pretrained weights."""

import math
import urllib.error

import pytest
import torch
import torchvision
from hydra.errors import InstantiationException

from src.models.summary import summarise
from src.utils.checkpoint import net_weights
from src.compose import build_net
from tests.conftest import ROOT, compose_config, run_cli

# segmentation_models_pytorch's: model=smp here, every architecture in tests/test_smp.py, and the
# shortcut configs checked to compose to their architecture.
SMP_SHORTCUTS = {"deeplabv3plus": "DeepLabV3Plus", "unetplusplus": "UnetPlusPlus", "fpn": "FPN", "segformer": "Segformer"}
SEGMENTATION = ["unet", "unet_bilinear", "unet_original", "resnet_unet", "resnet34_unet", "resnet50_unet", "fcn32s", "fcn8s",
                "deeplabv3", "smp"]  # fmt: skip
COLOUR = ["pool_upsample_net", "conv_transpose_net", "colour_unet"]


def build(name: str, num_classes: int = 2, in_channels: int = 3, *overrides: str, tmp_path=ROOT):
    cfg = compose_config(
        "train", [f"model={name}", f"data.num_classes={num_classes}", f"data.in_channels={in_channels}", *overrides], tmp_path
    )
    return build_net(cfg.model)


def count(params) -> int:
    return sum(p.numel() for p in params)


def test_every_model_config_is_tested():
    configs = {path.stem for path in (ROOT / "conf" / "model").glob("*.yaml")}
    assert configs == set(SEGMENTATION + COLOUR + list(SMP_SHORTCUTS) + ["resnet50_classifier", "timm_classifier"])


@pytest.mark.parametrize("name, arch", SMP_SHORTCUTS.items())
def test_smp_shortcuts_compose_to_their_architecture(name, arch):
    cfg = compose_config("train", [f"model={name}"], ROOT)
    assert cfg.model._target_ == "src.models.smp_net.SMPNet" and cfg.model.arch == arch


@pytest.mark.parametrize("num_classes", [1, 2, 21])
@pytest.mark.parametrize("name", SEGMENTATION + COLOUR)
def test_logits_have_the_input_size(name, num_classes):
    in_channels = 1 if name in COLOUR else 3
    net = build(name, num_classes, in_channels).eval()
    with torch.no_grad():
        for size in [(64, 64), (70, 90)]:
            assert net(torch.randn(1, in_channels, *size)).shape == (1, num_classes, *size)


def test_classifier_gives_one_logit_per_class():
    net = build("resnet50_classifier", 50).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 70, 90)).shape == (2, 50)
        assert net.features(torch.randn(2, 3, 64, 64)).shape == (2, 2048)


def test_timm_classifier_gives_one_logit_per_class_and_knows_its_normalisation():
    net = build("timm_classifier", 10).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 48)).shape == (2, 10)
        assert net.features(torch.randn(2, 3, 64, 64)).shape == (2, 1280)
    assert net.input_normalisation() == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # timm's tf_efficientnet_lite0 setting


@pytest.mark.parametrize(
    "name, overrides",
    [(name, []) for name in SEGMENTATION + COLOUR] + [("resnet_unet", ["model.encoder=resnet18", "model.decoder=unet",
                                                      "model.decoder_channels=[32,16,16,8,8]", "model.bridge_channels=64"])],
)
def test_backward_gives_finite_gradients(name, overrides):
    in_channels = 1 if name in COLOUR else 3
    net = build(name, 2, in_channels, *overrides).train()
    output = net(torch.randn(2, in_channels, 64, 64))
    output.float().square().mean().backward()
    for param_name, param in net.named_parameters():
        assert param.grad is not None, f"{param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} has a non-finite gradient"


def test_fc6_gemm_path_equals_the_convolution():
    from src.models.fcn import FullyConnectedConv

    layer = FullyConnectedConv(16, 32, kernel_size=7, padding=3)
    x = torch.randn(2, 16, 3, 5)
    assert torch.allclose(layer(x), torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=3), atol=1e-5)


@pytest.mark.parametrize(
    "name, parameters",
    [("resnet34_unet", 21_852_821), ("resnet50_unet", 67_138_997), ("unet_original", 31_033_045)],
)
def test_report_architectures_keep_their_parameter_counts(name, parameters):
    # The README's model table (K=21), as counted before resnet34_unet and resnet50_unet became
    # two settings of ResNetUNet.
    assert count(build(name, 21).parameters()) == parameters


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_resnet_unet_takes_its_encoder_depth_from_the_config(encoder):
    net = build("resnet_unet", 3, 3, f"model.encoder={encoder}")
    assert count(net.encoder.parameters()) == count(p for n, p in getattr(torchvision.models, encoder)().named_parameters()
                                                    if not n.startswith("fc."))  # fmt: skip
    assert net.encoder.channels[-1] == (512 if encoder in ("resnet18", "resnet34") else 2048)


def test_summary_counts_match_torchvision_encoders():
    resnet34 = torchvision.models.resnet34()
    resnet50 = torchvision.models.resnet50()
    vgg16 = torchvision.models.vgg16()
    without_fc = lambda model: count(p for n, p in model.named_parameters() if not n.startswith("fc."))  # noqa: E731

    rows = {row.name: row for row in summarise(build("resnet34_unet"), (1, 3, 64, 64), depth=1).rows}
    assert rows["encoder"].parameters == without_fc(resnet34) == 21_284_672
    rows = {row.name: row for row in summarise(build("resnet50_unet"), (1, 3, 64, 64), depth=1).rows}
    assert rows["encoder"].parameters == without_fc(resnet50) == 23_508_032

    rows = {row.name: row for row in summarise(build("fcn8s", 21), (1, 3, 64, 64), depth=1).rows}
    assert rows["to_pool3"].parameters + rows["to_pool4"].parameters + rows["to_pool5"].parameters == count(
        vgg16.features.parameters()
    )
    assert rows["fc6"].parameters + rows["fc7"].parameters == count(vgg16.classifier[0].parameters()) + count(
        vgg16.classifier[3].parameters()
    )

    deeplab = build("deeplabv3", 21)
    reference = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21)
    assert count(deeplab.parameters()) == count(reference.parameters())


def test_summary_of_the_original_unet_reports_31_million_parameters():
    summary = summarise(build("unet_original"), (1, 3, 256, 256), depth=1)
    assert summary.parameters == 31_031_810
    assert summary.output_shape == (1, 2, 256, 256)
    assert sum(row.macs for row in summary.rows) == summary.macs  # the table adds up to the total
    assert 40e9 < summary.macs < 50e9


def test_summary_command_prints_the_table_and_totals(tmp_path):
    result = run_cli("src.models.summary", "model=resnet34_unet", "input_size=64", "depth=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "encoder" in result.stdout and "21,284,672" in result.stdout
    assert "parameters: 21,852,194" in result.stdout
    assert not (tmp_path / "outputs").exists()  # a summary makes no run directory


def test_imagenet_weights_offline_say_which_file_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network)
    with pytest.raises(InstantiationException) as error:  # Hydra's wrapper around the model's RuntimeError
        build("resnet34_unet", 2, 3, "model.pretrained=imagenet")
    message = str(error.value)
    assert "resnet34-b627a593.pth" in message and str(tmp_path / "hub" / "checkpoints") in message


def place_in_hub_cache(model: torch.nn.Module, filename: str, tmp_path, monkeypatch) -> None:
    """Put a state dict where torchvision looks for a downloaded weights file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / "hub" / "checkpoints" / filename)


def test_imagenet_weights_load_from_the_torch_hub_cache(tmp_path, monkeypatch):
    reference = torchvision.models.resnet34()
    place_in_hub_cache(reference, "resnet34-b627a593.pth", tmp_path, monkeypatch)
    net = build("resnet34_unet", 2, 3, "model.pretrained=imagenet")
    assert torch.equal(net.encoder.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)


def test_vgg_fully_connected_layers_become_fcn_convolutions(tmp_path, monkeypatch):
    reference = torchvision.models.vgg16()
    place_in_hub_cache(reference, "vgg16-397923af.pth", tmp_path, monkeypatch)
    net = build("fcn32s", 2, 3, "model.pretrained=imagenet")
    assert torch.equal(net.fc6.weight.flatten(1), reference.classifier[0].weight)
    assert torch.equal(net.to_pool5[0].weight, reference.features[24].weight)


def test_state_dict_of_another_class_count_names_the_mismatched_layers(tmp_path):
    source = build("resnet34_unet", 2)
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    same = build("resnet34_unet", 2, 3, f"model.pretrained={tmp_path / 'weights.pt'}")
    assert torch.equal(same.head.weight, source.head.weight)
    with pytest.raises(ValueError, match=r"head\.weight \(2, 32, 1, 1\) vs \(21, 32, 1, 1\)"):
        build("resnet34_unet", 21, 3, f"model.pretrained={tmp_path / 'weights.pt'}")
    with pytest.raises(ValueError, match=r"layers of another shape .*decoder\.bridge.*layers the file lacks: decoder\.blocks"):
        build("resnet50_unet", 2, 3, f"model.pretrained={tmp_path / 'weights.pt'}")


def test_unavailable_pretrained_name_lists_the_choices():
    with pytest.raises(InstantiationException, match="model.pretrained='coco' is not available for resnet34_unet"):
        build("resnet34_unet", 2, 3, "model.pretrained=coco")


def test_seglab_checkpoint_is_read_as_the_nets_weights(trained_run):
    run_dir, _ = trained_run
    state = net_weights(run_dir / "checkpoints" / "best.ckpt")
    assert "head.weight" in state and not any(key.startswith("net.") for key in state)


# resnet_unet's default is resnet34_unet; resnet50_unet and deeplabv3 (15 s together) run with -m slow.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("resnet50_unet", "deeplabv3") else n
                                  for n in SEGMENTATION if n != "resnet_unet"])  # fmt: skip
def test_fast_training_run_works_for_every_segmentation_model(train_run, name):
    # FCN's fc6/fc7 at full width make 1.6 GB checkpoints (weights + Adam state); the code path is
    # the same at a narrower width.
    narrow = ["model.fc_channels=256"] if name.startswith("fcn") else []
    _, metrics = train_run(f"model={name}", "debug=fast", *narrow)
    assert math.isfinite(metrics["test"]["test/loss"])


def test_resnet18_unet_trains_fast(train_run):
    run_dir, metrics = train_run("model=resnet_unet", "model.encoder=resnet18", "debug=fast")
    assert math.isfinite(metrics["test"]["test/loss"])
    assert "encoder: resnet18" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", SEGMENTATION)
def test_loss_halves_on_a_fixed_batch_within_50_steps(name):
    from src.data.shapes import ShapesDataModule
    from src.losses import CrossEntropyLoss

    torch.manual_seed(0)
    # The FCNs score at 1/32 (a 2x2 map at 64 px), so they get 128 px. A from-scratch VGG without
    # batch norm stalls at the class prior under Adam at 1e-3; at 1e-4 it trains.
    fcn = name.startswith("fcn")
    size = 128 if fcn else 64
    data = ShapesDataModule(num_classes=2, class_names=["bg", "fg"], image_size=size, num_train=4, batch_size=4)
    data.setup("fit")
    batch = data.normalise_batch(next(iter(data.train_dataloader())))
    # fc6/fc7 at 512 channels, not VGG's 4096: the same layers, a third of the time (CI's slow suite)
    net = build(name, 2, 3, *(["model.fc_channels=512"] if fcn else [])).train()
    params = [p for p in net.parameters() if p.requires_grad]
    if fcn:
        net.dropout.eval()  # fc6/fc7 dropout off: one fixed batch should give a smooth loss curve
    optimizer = torch.optim.Adam(params, lr=1e-4 if fcn else 1e-3)
    loss_fn = CrossEntropyLoss()
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = loss_fn(net(batch["image"]), batch["mask"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) <= losses[0] / 2, f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"
