"""src.predict: masks and overlays at each image's own size; unreadable files reported by name; inputs that
share a stem, an input without images and a bad batch size."""

import numpy as np
import pytest
from PIL import Image

from src.predict import predict
from tests.conftest import run_cli
from tests.fixtures import red_on_blue


def test_predict_writes_a_mask_and_an_overlay_per_image_at_its_size(trained_run, tmp_path, caplog):
    _, metrics = trained_run
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"wide.jpg": (70, 40), "tall.png": (30, 90), "grey.png": (48, 48)}
    for name, (width, height) in sizes.items():
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : height // 2, width // 4 : width // 2] = 1
        picture = Image.fromarray(red_on_blue(mask, rng))
        picture.convert("L").save(photos / name) if name.startswith("grey") else picture.save(photos / name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "predicted"

    result = predict(metrics["best_checkpoint"], photos, out, batch_size=2)

    assert result["failed"] == [str(photos / "broken.jpg")]
    assert "broken.jpg" in caplog.text
    for name, size in sizes.items():
        stem = name.split(".")[0]
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.mode == "P" and mask.size == size
        assert set(np.unique(np.asarray(mask))) <= {0, 1}
        overlay = Image.open(out / f"{stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == size
    assert not (out / "broken_mask.png").exists()


def test_predict_command_writes_into_its_run_directory_without_output(trained_run, tmp_path):
    _, metrics = trained_run
    rng = np.random.default_rng(0)
    Image.fromarray(red_on_blue(np.eye(40, dtype=np.uint8), rng)).save(tmp_path / "one.png")
    result = run_cli("src.predict", f"ckpt_path={metrics['best_checkpoint']}", f"input={tmp_path / 'one.png'}",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert Image.open(tmp_path / "run" / "one_mask.png").size == (40, 40)
    assert "Wrote 1 masks and overlays" in (tmp_path / "run" / "predict.log").read_text()


def test_predict_keeps_the_outputs_of_inputs_that_share_a_stem(trained_run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(photos / "a.jpg")
    Image.fromarray(np.full((40, 10, 3), 50, np.uint8)).save(photos / "a.png")
    result = predict(trained_run[1]["best_checkpoint"], photos, tmp_path / "out", batch_size=2)
    assert len(result["written"]) == 2
    assert Image.open(tmp_path / "out" / "a_jpg_mask.png").size == (30, 20)
    assert Image.open(tmp_path / "out" / "a_png_mask.png").size == (10, 40)


@pytest.mark.parametrize("make_input, message", [
    (lambda d: d.mkdir() or d, "a folder without images"),
    (lambda d: d, "no such file or folder"),
], ids=["empty-folder", "missing-input"])  # fmt: skip
def test_predict_refuses_an_input_without_images_and_writes_nothing(trained_run, tmp_path, make_input, message):
    with pytest.raises(FileNotFoundError, match=message):
        predict(trained_run[1]["best_checkpoint"], make_input(tmp_path / "input"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_predict_names_a_batch_size_of_zero_and_writes_nothing(trained_run, tmp_path):
    (tmp_path / "input").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "input" / "a.png")
    result = run_cli("src.predict", f"ckpt_path={trained_run[1]['best_checkpoint']}", f"input={tmp_path / 'input'}",
                     f"output={tmp_path / 'out'}", "batch_size=0", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and "batch_size must be a whole number >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
