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
}


# unet in the fast suite; resnet34_unet and fcn8s (each 10-15 s of exporting) with -m slow.
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
    assert sidecar["input"]["mean"] == [0.485, 0.456, 0.406] and sidecar["input"]["dynamic"]

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

    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
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
