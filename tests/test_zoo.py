"""bench/zoo.py --quick: two real-data recipes a few steps each, and the table it writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA

NEEDED = [SHARED_DATA / "camvid" / "train.txt", SHARED_DATA / "pets" / "annotations" / "test.txt",
          SHARED_DATA.parent / "weights" / "efficientnet_lite0_imagenet.safetensors"]  # fmt: skip


@pytest.mark.skipif(not all(p.is_file() for p in NEEDED), reason="../shared/ (CamVid, pets, Lite0 weights) is not here")
@pytest.mark.slow
def test_quick_zoo_writes_the_results_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# seglab\n\n## Results on real data\n\n<!-- zoo:begin -->\nold\n<!-- zoo:end -->\n\nAfter.\n")
    result = subprocess.run([sys.executable, "bench/zoo.py", "--quick", "--work", str(tmp_path / "work"), "--readme", str(readme),
                             "--results", str(tmp_path / "results.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["experiment"] for r in rows] == ["camvid_lite0_fpn", "pets_lite0_fpn"]
    for row in rows:
        assert 0.0 <= row["low"] <= row["score"] <= row["high"] <= 1.0
        assert row["epochs"] == 1 and row["train_images_per_s"] > 0 and row["quick"]
    text = readme.read_text()
    assert "old" not in text and text.endswith("After.\n")
    assert "| CamVid (33 test pairs) | FPN-64 on EfficientNet-Lite0 | ImageNet (file) | 1 | miou " in text
    assert "`python -m src.train experiment=pets_lite0_fpn paths.data_dir=../shared/data" in text
