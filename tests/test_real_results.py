"""Real results: data=camvid, encoder weights from files, class weights from the data, paired comparisons."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from src.data.camvid import CamVidDataModule, relative_to_root
from src.data.class_weights import class_pixel_counts, class_weights
from src.models.weights import load_encoder_weights
from src.utils.bootstrap import PerImage, paired_comparison, resample_indices
from src.compose import build_net
from tests.conftest import ROOT, SHARED_DATA, run_cli
from tests.fixtures import make_camvid

CLASS_NAMES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist"]


def camvid(root, **kwargs) -> CamVidDataModule:
    settings = dict(num_classes=11, class_names=CLASS_NAMES, image_size=36, resize="none", eval_resolution="original",
                    cache_dir=str(root.parent / "cache"), batch_size=2)  # fmt: skip
    return CamVidDataModule(str(root), **{**settings, **kwargs})


def test_list_paths_of_another_machine_are_read_from_the_dataset_folder():
    assert str(relative_to_root("/SegNet/CamVid/trainannot/a.png", ("train", "trainannot"))) == "trainannot/a.png"
    assert str(relative_to_root("C:\\data\\CamVid\\val\\b.png", ("val", "valannot"))) == "val/b.png"


def test_camvid_reads_the_segnet_layout_with_void_ignored(tmp_path):
    root = make_camvid(tmp_path / "CamVid")
    data = camvid(root)
    data.setup()
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [8, 3, 3]
    item = data.datasets["test"][0]
    assert item["image"].shape == (3, 36, 48) and item["mask"].shape == (36, 48)
    values = set(torch.unique(item["mask"]).tolist())
    assert 255 in values and 11 not in values and values <= {0, 3, 8, 255}  # void became ignore_index
    assert [tuple(c) for c in data.palette[[0, 3, 8]]] == [(128, 128, 128), (128, 64, 128), (64, 0, 128)]


def test_camvid_names_a_label_value_it_does_not_know(tmp_path):
    from PIL import Image

    root = make_camvid(tmp_path / "CamVid")
    bad = root / "trainannot" / "Seq01_train0000.png"
    labels = np.asarray(Image.open(bad)).copy()
    labels[0, 0] = 40
    Image.fromarray(labels, mode="L").save(bad)
    with pytest.raises(ValueError, match=r"Seq01_train0000.png: label values \[40\]"):
        camvid(root).setup("fit")


@pytest.mark.skipif(not (SHARED_DATA / "camvid" / "train.txt").is_file(), reason="../shared/data/camvid is not here")
def test_the_real_camvid_lists_resolve(tmp_path):
    data = camvid(SHARED_DATA / "camvid")
    assert [len(data.list_split(s)) for s in ("train", "val", "test")] == [367, 101, 33]
    assert all(s.image.is_file() and s.mask.is_file() for s in data.list_split("test"))


def test_median_frequency_weights_are_median_frequency_over_frequency():
    masks = [np.array([[0, 0, 0, 1]], np.uint8), np.array([[0, 2, 2, 255]], np.uint8), np.array([[1, 1, 1, 1]], np.uint8)]
    pixels, present = class_pixel_counts(masks, 3)
    assert pixels.tolist() == [4, 5, 2] and present.tolist() == [7, 8, 3]  # 255 counts nowhere
    frequency = np.array([4 / 7, 5 / 8, 2 / 3])
    np.testing.assert_allclose(class_weights("median_frequency", pixels, present), np.median(frequency) / frequency, atol=1e-6)
    np.testing.assert_allclose(class_weights("inverse_frequency", pixels, present), 11 / (3 * np.array([4, 5, 2])), atol=1e-6)
    with pytest.raises(ValueError, match="loss.class_weights"):
        class_weights("balanced", pixels, present)


def test_class_weights_from_the_training_masks_reach_the_run_config(train_run, caplog):
    import yaml

    with caplog.at_level(logging.INFO):
        run_dir, _ = train_run("loss.class_weights=median_frequency", "trainer.max_epochs=1", "+trainer.limit_train_batches=1",
                               "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1")  # fmt: skip
    weights = yaml.safe_load((run_dir / "config.yaml").read_text())["loss"]["class_weights"]
    assert len(weights) == 2 and all(w > 0 for w in weights) and weights[0] < weights[1]  # shapes: background is the common class
    assert f"Class weights (median_frequency, from the training masks): background {weights[0]:.4f}" in caplog.text


def test_a_torchvision_resnet18_file_loads_into_resnet_unets_encoder(tmp_path, caplog):
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")  # fc.* included, as torchvision writes it
    config = {"_target_": "src.models.resnet_unet.ResNetUNet", "in_channels": 3, "num_classes": 2, "encoder": "resnet18",
              "encoder_weights": str(tmp_path / "resnet18.pth")}  # fmt: skip
    with caplog.at_level(logging.INFO):
        net = build_net(config)
    torch.testing.assert_close(net.encoder.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    torch.testing.assert_close(net.encoder.bn1.running_var, source.bn1.running_var)
    expected = sum(1 for k in source.state_dict() if not k.startswith("fc."))
    assert f"loaded {expected} tensors from {tmp_path / 'resnet18.pth'} into net.encoder, skipped 2 classifier tensors (fc)" in caplog.text


def test_a_timm_resnet18_file_loads_into_an_smp_tu_encoder(tmp_path, caplog):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)
    save_file(source.state_dict(), tmp_path / "resnet18.safetensors")
    config = {"_target_": "src.models.smp_net.SMPNet", "in_channels": 3, "num_classes": 3, "arch": "FPN", "encoder": "tu-resnet18",
              "encoder_weights": str(tmp_path / "resnet18.safetensors")}  # fmt: skip
    with caplog.at_level(logging.INFO):
        net = build_net(config)
    torch.testing.assert_close(net.model.encoder.model.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert "tensors from" in caplog.text and "into net.model.encoder" in caplog.text


def test_grey_input_averages_the_rgb_stem(tmp_path):
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    net = build_net({"_target_": "src.models.resnet_unet.ResNetUNet", "in_channels": 1, "num_classes": 2, "encoder": "resnet18",
                     "encoder_weights": str(tmp_path / "r18.pt")})  # fmt: skip
    torch.testing.assert_close(net.encoder.conv1.weight, source.conv1.weight.mean(1, keepdim=True))


def test_a_file_of_another_architecture_is_refused_naming_layers(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    net = build_net({"_target_": "src.models.resnet_unet.ResNetUNet", "in_channels": 3, "num_classes": 2, "encoder": "resnet18"})
    with pytest.raises(ValueError, match=r"does not fit the encoder of ResNetUNet.*layer1\.0\.conv1\.weight \(64, 64, 1, 1\).*file layers the encoder lacks: .*conv3"):
        load_encoder_weights(net, tmp_path / "resnet50.pth")
    torch.save({"whatever.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="encoder layers the file lacks: encoder.bn1.bias.*file layers the encoder lacks: whatever.weight"):
        load_encoder_weights(net, tmp_path / "other.pth")


@pytest.mark.slow  # a 528 MB state dict written and read: 16 s
def test_a_vgg16_file_loads_into_fcn8s(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    torch.save(vgg.state_dict(), tmp_path / "vgg16.pth")
    net = build_net({"_target_": "src.models.fcn.FCN8s", "in_channels": 3, "num_classes": 3, "encoder_weights": str(tmp_path / "vgg16.pth")})
    torch.testing.assert_close(net.to_pool5[0].weight, vgg.features[24].weight)
    torch.testing.assert_close(net.fc6.weight, vgg.classifier[0].weight.view(4096, 512, 7, 7))


def test_a_seglab_checkpoints_encoder_loads_and_the_run_records_the_encoders_normalisation(tmp_path):
    """Train a tu-tf_efficientnet_lite0 FPN from a timm-named file, as a user would (command line):
    the checkpoint's config holds timm's 0.5/0.5 normalisation; then its encoder loads into a new net."""
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("tf_efficientnet_lite0").state_dict(), tmp_path / "lite0.safetensors")
    run_dir = tmp_path / "run"
    result = run_cli("src.train", "debug=fast", "model=smp", "model.arch=FPN", "model.encoder=tu-tf_efficientnet_lite0",
                     f"model.encoder_weights={tmp_path / 'lite0.safetensors'}", "data.image_size=64", "data.num_train=8",
                     "data.num_val=4", "data.num_test=4", f"hydra.run.dir={run_dir}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Encoder weights: loaded" in (run_dir / "train.log").read_text()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["seglab_config"]["data"]["mean"] == [0.5, 0.5, 0.5] and state["seglab_config"]["data"]["std"] == [0.5, 0.5, 0.5]
    fresh = build_net({"_target_": "src.models.smp_net.SMPNet", "in_channels": 3, "num_classes": 2, "arch": "Unet",
                       "encoder": "tu-tf_efficientnet_lite0", "encoder_weights": str(run_dir / "checkpoints" / "last.ckpt")})  # fmt: skip
    trained = state["state_dict"]["net.model.encoder.model.conv_stem.weight"]
    torch.testing.assert_close(fresh.model.encoder.model.conv_stem.weight, trained)


def test_paired_comparison_equals_numpys(tmp_path):
    rng = np.random.default_rng(3)
    names = [f"img{i}" for i in range(40)]
    dice_a, dice_b = rng.uniform(0.5, 0.9, 40), rng.uniform(0.5, 0.9, 40) + 0.05
    a, b = PerImage(names, {"dice": dice_a}), PerImage(names[::-1], {"dice": dice_b[::-1]})  # other row order
    result = paired_comparison(a, b, "dice", seed=7)
    order = np.argsort(names)  # pairs are taken in name order
    rows = resample_indices(40, seed=7)
    differences = dice_b[order][rows].mean(1) - dice_a[order][rows].mean(1)
    assert result.difference == pytest.approx(dice_b.mean() - dice_a.mean())
    assert (result.low, result.high) == pytest.approx(tuple(np.percentile(differences, [2.5, 97.5])))


def test_paired_miou_is_the_dataset_level_miou_of_each_resample():
    inter = np.array([[10, 0], [5, 5], [0, 8]], float)
    union = np.array([[20, 0], [10, 10], [0, 16]], float)
    runs = PerImage(["a", "b", "c"], {"inter_x": inter[:, 0], "inter_y": inter[:, 1], "union_x": union[:, 0], "union_y": union[:, 1]})
    assert runs.score("miou") == pytest.approx(np.mean([15 / 30, 13 / 26]))
    assert runs.score("miou", np.array([[0, 0, 0]]))[0] == pytest.approx(0.5)  # y absent from the resample: left out


def test_report_compare_is_a_command(tmp_path):
    for run, shift in (("a", 0.0), ("b", 0.3)):
        (tmp_path / run / "images").mkdir(parents=True)
        rows = ["name,dice,iou,acc"] + [f"n{i},{0.4 + shift + 0.01 * i:.4f},0.5,0.9" for i in range(20)]
        (tmp_path / run / "images" / "per_image.csv").write_text("\n".join(rows) + "\n")
    result = run_cli("src.report", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "B - A = +0.3000" in output and "B is better beyond noise" in output


@pytest.mark.slow
def test_the_results_tables_camvid_fcn8s_command_runs_as_typed(tmp_path):
    """README, results on real data: the camvid_fcn8s command as listed, run from a folder whose
    ../shared/data/camvid is a CamVid-layout folder, for two batches (debug=fast) with a narrow
    fc6/fc7 (the full 4096 make a 1.6 GB checkpoint)."""
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("- `python -m src.train experiment=camvid_fcn8s "))
    arguments = line.removeprefix("- `").removesuffix("`").split()[2:]  # after "python -m"
    make_camvid(tmp_path / "shared" / "data" / "camvid")
    (tmp_path / "work").mkdir()
    result = run_cli(*arguments, "debug=fast", "model.fc_channels=256", "data.batch_size=2", "hydra.run.dir=run", cwd=tmp_path / "work")
    assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
    metrics = json.loads((tmp_path / "work" / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["test/miou"] <= 1.0


@pytest.mark.slow
def test_the_readmes_encoder_file_commands_run_as_typed(tmp_path):
    """README, "Real data, pretrained encoders from files": the two placeholder lines, with the files
    they name written here in the formats timm and torchvision save, and debug=fast on tiny sizes."""
    import timm
    import torchvision
    from safetensors.torch import save_file

    from tests.conftest import TINY
    from tests.fixtures import make_pets

    make_camvid(tmp_path / "CamVid")
    make_pets(tmp_path / "data" / "oxford-iiit-pet")  # where data=pets looks: <paths.data_dir>/oxford-iiit-pet
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet18.safetensors")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18-f37072fd.pth")
    readme = (ROOT / "README.md").read_text()
    lines = [line.strip() for line in readme.splitlines() if "model.encoder_weights=resnet18" in line and line.startswith("    python")]
    assert len(lines) == 2, lines
    for number, line in enumerate(lines):
        arguments = line.split()[2:]  # after "python -m"
        result = run_cli(*arguments, "debug=fast", *TINY, "data.crop_size=null", f"hydra.run.dir=run{number}", cwd=tmp_path)
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        assert "Encoder weights: loaded" in result.stdout + result.stderr
