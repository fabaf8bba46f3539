"""src.export: ONNX files that reproduce the PyTorch net, and src.predict running them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import SHARED_DATA, run_cli
from tests.fixtures import make_voc

MODELS = {  # name: (overrides, classes)
    "unet": ([], 2),
    "resnet34_unet": (["model=resnet34_unet"], 2),
    # VGG without batch norm: at Adam's 3e-3 one step takes the logits to ~3e4, where float32 alone
    # differs by 1e-2; FCN recipes train at 1e-4 and below.
    "fcn8s": (["model=fcn8s", "model.fc_channels=256", "data=voc", "data.image_size=64", "optimizer.lr=1e-5"], 21),
    # timm's TensorFlow "same" padding, exported as the fixed padding it is (src.export.static_same_padding)
    "lite0_fpn": (["model=smp", "model.arch=FPN", "model.encoder=tu-tf_efficientnet_lite0", "data.image_size=64",
                   "+model.options.decoder_pyramid_channels=16", "+model.options.decoder_segmentation_channels=32"], 2),
}


# unet in the fast suite; the others (each 10-25 s of exporting) with -m slow.
@pytest.mark.parametrize("name", [n if n == "unet" else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
def test_exported_onnx_matches_pytorch_at_two_sizes(train_run, tmp_path, name):
    import onnxruntime

    from src.export import export
    from src.compose import load_mask_model

    overrides, classes = MODELS[name]
    if "data=voc" in overrides:
        overrides = overrides + [f"data.root={make_voc(tmp_path / 'VOC2012', train=8, val=3)}", f"data.cache_dir={tmp_path / 'cache'}"]
    _, metrics = train_run(*overrides, "debug=fast", "trainer.limit_train_batches=1")
    info = export(metrics["best_checkpoint"], "onnx", tmp_path / "exported")
    assert info["output"]["channels"] == classes and len(info["classes"]) == classes
    assert [run["same_masks"] for run in info["checked"]["runs"]] == [True, True]
    sidecar = json.loads((tmp_path / "exported" / "model.json").read_text())
    assert sidecar["input"]["mean"] == ([0.5] * 3 if "lite0" in name else [0.485, 0.456, 0.406]) and sidecar["input"]["dynamic"]

    # Checked again here, on inputs the export never saw: another batch size and two odd sizes.
    _, task = load_mask_model(metrics["best_checkpoint"])
    net = task.net.to(memory_format=torch.contiguous_format)
    session = onnxruntime.InferenceSession(str(tmp_path / "exported" / "model.onnx"), providers=["CPUExecutionProvider"])
    for size in [(48, 80), (67, 53)]:
        images = torch.randn(3, 3, *size)
        with torch.no_grad():
            reference = net(images)
        logits = torch.from_numpy(session.run(None, {"image": images.numpy()})[0])
        assert logits.shape == reference.shape == (3, classes, *size)
        assert (logits - reference).abs().max() <= 1e-3
        assert torch.equal(logits.argmax(1), reference.argmax(1))


def test_static_same_padding_keeps_a_tf_encoders_logits_at_any_input_size():
    from timm.layers import Conv2dSame

    from src.compose import build_net
    from src.export import static_same_padding

    net = build_net({"_target_": "src.models.smp_net.SMPNet", "in_channels": 3, "num_classes": 2, "arch": "FPN",
                     "encoder": "tu-tf_efficientnet_lite0",
                     "options": {"decoder_pyramid_channels": 16, "decoder_segmentation_channels": 32}}).eval()  # fmt: skip
    static = static_same_padding(net)
    assert sum(isinstance(m, Conv2dSame) for m in net.modules()) == 5  # the original keeps its layers
    assert not any(isinstance(m, Conv2dSame) for m in static.modules())
    for size in [(64, 64), (67, 53), (96, 160)]:  # odd sizes are padded to the size multiple inside the net
        images = torch.randn(2, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(static(images), net(images))
    plain = build_net({"_target_": "src.models.unet.UNet", "in_channels": 3, "num_classes": 2, "base_width": 4, "depth": 3})
    assert static_same_padding(plain) is plain  # nothing to change: no copy


@pytest.mark.skipif(not (SHARED_DATA / "pets").is_dir(), reason="../shared/data/pets is not present")
def test_predict_with_onnxruntime_writes_the_masks_pytorch_writes(trained_run, tmp_path):
    from src.export import export
    from src.predict import predict

    _, metrics = trained_run
    export(metrics["best_checkpoint"], "onnx", tmp_path / "exported")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((SHARED_DATA / "pets" / "images").glob("*.jpg"))[:2]:
        (photos / path.name).write_bytes(path.read_bytes())
    by_torch = predict(metrics["best_checkpoint"], photos, tmp_path / "torch")
    # The README's command, as typed: Hydra must not take the key for a config group.
    command = run_cli("src.predict", f"onnx_path={tmp_path / 'exported' / 'model.onnx'}", f"input={photos}",
                      f"output={tmp_path / 'onnx'}", cwd=tmp_path)  # fmt: skip
    assert command.returncode == 0, command.stderr[-2000:]
    assert len(by_torch["written"]) == len(list((tmp_path / "onnx").glob("*_mask.png"))) == 2
    for mask in sorted((tmp_path / "torch").glob("*_mask.png")):
        assert np.array_equal(np.asarray(Image.open(mask)), np.asarray(Image.open(tmp_path / "onnx" / mask.name)))


@pytest.mark.slow
def test_a_truncated_onnx_file_or_a_disagreeing_model_json_is_one_line_naming_the_file(trained_run, tmp_path):
    from src.export import export

    _, metrics = trained_run
    export(metrics["best_checkpoint"], "onnx", tmp_path / "exported")
    exported = tmp_path / "exported" / "model.onnx"
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)

    card = json.loads((tmp_path / "exported" / "model.json").read_text())
    card["input"]["channels"] = 1
    (tmp_path / "exported" / "model.json").write_text(json.dumps(card))
    wrong = run_cli("src.predict", f"onnx_path={exported}", f"input={photo}", f"output={tmp_path / 'out'}", cwd=tmp_path)
    assert wrong.returncode == 1
    assert f"{exported}: does not match the model.json beside it (3 input channels in the file, 1 in model.json)" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    exported.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    truncated = run_cli("src.predict", f"onnx_path={exported}", f"input={photo}", f"output={tmp_path / 'out'}", cwd=tmp_path)
    assert truncated.returncode == 1
    assert f"{exported}: onnxruntime cannot load this file" in truncated.stderr and "Traceback" not in truncated.stderr


def test_an_int8_export_runs_in_onnxruntime_agrees_with_fp32_and_records_the_score_change(trained_run, tmp_path):
    from src.compose import load_mask_model
    from src.exported import ExportedNet
    from src.export import export

    checkpoint = trained_run[0] / "checkpoints" / "best.ckpt"
    info = export(str(checkpoint), "onnx", tmp_path / "int8", quantize="int8", calibration_images=16)
    how = json.loads((tmp_path / "int8" / "model.json").read_text())["quantization"]
    assert how["format"] == "QDQ" and how["calibration_images"] == 16 and how == info["quantization"]
    check = how["check"]
    assert check["change"] == pytest.approx(check["int8"] - check["fp32"]) and check["mask_agreement"] >= 0.98
    assert check["fp32"] == pytest.approx(check["fp32_scores"][check["metric"]])
    import onnx

    import onnxruntime
    from onnx import numpy_helper

    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    # Weights in 7 bits by default: onnxruntime's 16-bit pair sums cannot saturate on CPUs without VNNI.
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert how["reduce_range"] is True and "7-bit" in how["weights"] and how["quantized_on"]
    assert info["exported_with"]["onnxruntime"] == onnxruntime.__version__
    # The file alone, on an image of the test split: the same masks as the fp32 net on nearly every pixel.
    cfg, task = load_mask_model(str(checkpoint))
    int8 = ExportedNet(tmp_path / "int8" / "model.onnx")
    images = torch.randn(2, 3, 40, 56)
    agree = (task.net(images).argmax(1) == int8(images).argmax(1)).float().mean()
    assert agree >= 0.9  # random pixels are far from the calibration images; the test split's figure is above


def test_an_int8_export_that_loses_more_than_max_score_drop_fails_and_writes_no_model(trained_run, tmp_path):
    from src.export import export

    checkpoint = trained_run[0] / "checkpoints" / "best.ckpt"
    with pytest.raises(ValueError, match=r"quantize=int8: test/dice_per_image dropped by .* more than max_score_drop=-1.0; no model written"):
        export(str(checkpoint), "onnx", tmp_path / "out", quantize="int8", calibration_images=8, max_score_drop=-1.0)
    assert not list((tmp_path / "out").glob("*.onnx")) and not (tmp_path / "out" / "model.json").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "run_status.json"]


@pytest.mark.slow  # three command lines: CI runs it with -m slow
def test_eval_of_the_exported_fp32_and_int8_models_from_the_command_line(trained_run, tmp_path):
    checkpoint = trained_run[0] / "checkpoints" / "best.ckpt"
    for name, extra in (("fp32", []), ("int8", ["quantize=int8", "calibration_images=16"])):
        exported = run_cli("src.export", f"ckpt_path={checkpoint}", *extra, f"output={tmp_path / name}", f"hydra.run.dir={tmp_path / ('x' + name)}", cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr[-3000:]
    scores = {}
    for name, source in (("ckpt", f"ckpt_path={checkpoint}"), ("fp32", f"onnx_path={tmp_path / 'fp32' / 'model.onnx'}"),
                         ("int8", f"onnx_path={tmp_path / 'int8' / 'model.onnx'}")):  # fmt: skip
        evaluated = run_cli("src.eval", source, f"hydra.run.dir={tmp_path / ('eval_' + name)}", cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        scores[name] = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())["test"]
    assert scores["fp32"].keys() == scores["ckpt"].keys()
    assert all(abs(scores["fp32"][k] - scores["ckpt"][k]) <= 1e-4 for k in scores["ckpt"]), scores
    check = json.loads((tmp_path / "int8" / "model.json").read_text())["quantization"]["check"]
    assert scores["int8"][check["metric"]] == pytest.approx(check["int8"], abs=1e-4)  # eval shows the number export checked


@pytest.mark.slow  # two exports (one INT8 with its test-split check) and three backends timed
def test_the_predict_bench_times_eager_onnx_fp32_and_int8_end_to_end_and_reports_the_score_kept(trained_run, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):  # five photos at two batches of 4: a full and a partial batch
        Image.fromarray(rng.integers(0, 256, (30 + k, 41, 3), dtype=np.uint8)).save(photos / f"p{k}.jpg")
    checkpoint = trained_run[0] / "checkpoints" / "best.ckpt"
    bench = subprocess.run([sys.executable, str(ROOT / "bench" / "predict.py"), "--ckpt", str(checkpoint), "--photos", str(photos),
                            "--batch", "4", "--passes", "1", "--further", "--both-ranges"], cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-3000:]
    row = json.loads(next(line for line in bench.stdout.splitlines() if line.startswith("{")))
    assert set(row["images_per_s"]) == {"eager PyTorch", "onnxruntime fp32", "onnxruntime int8", "onnxruntime int8, other range",
                                        "onnxruntime dynamic int8", "onnxruntime fp16"}  # fmt: skip
    assert "7-bit" in row["int8_weights"] and "full range" in row["other_range"]["int8_weights"]
    assert 0 <= row["other_range"]["int8_score"] <= 1 and "INT8 with int8, per channel, full range:" in bench.stdout
    assert all(rate > 0 for rate in row["images_per_s"].values()) and row["photos"] == 5
    assert row["int8_vs_eager"] == pytest.approx(row["images_per_s"]["onnxruntime int8"] / row["images_per_s"]["eager PyTorch"], abs=0.01)
    assert row["metric"] == "test/dice_per_image" and 0 <= row["int8_score"] <= 1 and row["mask_agreement"] >= 0.98
    assert "| onnxruntime INT8 |" in bench.stdout and f"| {checkpoint} | 5 |" in bench.stdout
    assert "further (not offered): onnxruntime dynamic int8" in bench.stdout and "not offered): onnxruntime int8" not in bench.stdout


def test_the_export_check_forgives_a_flipped_near_tie_and_nothing_else():
    from src.export import mask_differences

    reference = torch.zeros(1, 2, 2, 2)
    reference[0, 1] = torch.tensor([[3.0, -3.0], [1e-6, -2.0]])  # pixel (1, 0): classes 0 and 1 nearly tied
    rounded = reference.clone()
    rounded[0, 1, 1, 0] = -1e-6  # float32 rounding of 2e-6 breaks the tie the other way
    assert mask_differences(reference, rounded, 0.5, difference=2e-6) == (0, 1)
    wrong = rounded.clone()
    wrong[0, 1, 0, 0] = -3.0  # a confident pixel changes class: not explained by a small difference
    assert mask_differences(reference, wrong, 0.5, difference=2e-6) == (1, 1)
    sigmoid = torch.tensor([[[[0.5, 1e-7]]]])  # one channel: the margin is to the threshold's logit, 0 at 0.5
    assert mask_differences(sigmoid, -sigmoid, 0.5, difference=1e-6) == (1, 1)
    assert mask_differences(reference, reference, 0.5, difference=0.0) == (0, 0)


@pytest.mark.slow
def test_a_fixed_size_export_runs_at_the_training_size_and_refuses_another_by_name(trained_run, tmp_path):
    from src.predict import predict

    checkpoint = trained_run[0] / "checkpoints" / "best.ckpt"
    exported = run_cli("src.export", f"ckpt_path={checkpoint}", "fixed_size=true", f"output={tmp_path / 'fixed'}",
                       f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    info = json.loads((tmp_path / "fixed" / "model.json").read_text())
    assert info["input"]["dynamic"] is False and [run["size"] for run in info["checked"]["runs"]] == [[32, 32]]
    Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    model = str(tmp_path / "fixed" / "model.onnx")
    assert predict(None, tmp_path / "photo.png", tmp_path / "out", onnx_path=model)["written"] == [str(tmp_path / "photo.png")]
    assert Image.open(tmp_path / "out" / "photo_mask.png").size == (30, 20)
    with pytest.raises(ValueError, match=r"exported at a fixed 32x32 \(fixed_size=true\), given \(20, 30\)"):
        predict(None, tmp_path / "photo.png", tmp_path / "out2", onnx_path=model, resize="none")
