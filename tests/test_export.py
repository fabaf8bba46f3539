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
