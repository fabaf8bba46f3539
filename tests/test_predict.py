"""src.predict: masks and overlays at each image's own size; unreadable files reported by name."""

import numpy as np
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
