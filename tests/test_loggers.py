"""logger=csv, mlflow, wandb and lists of them: each gets the config, the scalars and the pictures,
read back with the tracker's own reader."""

from __future__ import annotations

import csv
import json

import pytest

from src.validate import ConfigError, check_config
from tests.conftest import compose_config, tiny

TWO_EPOCHS = ["debug=fast", "trainer.max_epochs=2"]


def test_logger_csv_writes_every_epochs_scores_to_metrics_csv(train_run, tmp_path):
    run_dir, metrics = train_run("logger=csv", *TWO_EPOCHS)
    with open(run_dir / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    epochs = sorted({int(row["epoch"]) for row in rows if row.get("val/dice")})
    assert epochs == [0, 1]
    tested = [row for row in rows if row.get("test/dice")]
    assert len(tested) == 1 and float(tested[0]["test/dice"]) == pytest.approx(metrics["test"]["test/dice"])
    assert "data/batch_size" in (run_dir / "csv" / "hparams.yaml").read_text()


@pytest.mark.slow  # MLflow's SQLite store sets itself up (its migrations) in about 10 s: CI runs it with -m slow
def test_logger_mlflow_run_read_back_with_mlflows_client(train_run, tmp_path):
    from mlflow import MlflowClient

    run_dir, metrics = train_run("logger=mlflow", f"paths.tracking_dir={tmp_path / 'tracking'}", *TWO_EPOCHS)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seglab")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["test/dice"] == pytest.approx(metrics["test"]["test/dice"])
    assert run.data.params["data/batch_size"] == "8" and run.data.tags["run_dir"] == str(run_dir)
    grids = [a.path for a in client.list_artifacts(run.info.run_id, "val/masks")]
    assert grids and all(path.endswith(".png") for path in grids)
    assert client.list_artifacts(run.info.run_id, "test/worst")


@pytest.mark.slow  # wandb starts a service process: CI runs it with -m slow
def test_logger_wandb_offline_writes_a_run_whose_summary_holds_the_test_metrics(train_run, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run_dir, metrics = train_run("logger=wandb", *TWO_EPOCHS)
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    summary = {}
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "summary":
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update})
    assert summary["test/dice"] == pytest.approx(metrics["test"]["test/dice"])
    assert summary["val/masks/_type"] == "images/separated" and summary["val/masks/filenames"][0].endswith(".png")  # the mask grid
    assert (run_file.parent / "files" / summary["val/masks/filenames"][0]).is_file()


def wandb_records(path):
    """The protobuf records of an offline run's .wandb file (wandb's own Record type): a 7-byte
    header, then LevelDB-style log records (crc32, length, type) in 32 KiB blocks."""
    import struct

    from wandb.proto.wandb_internal_pb2 import Record

    data, position, pieces = path.read_bytes(), 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # too little of the block left for a header: padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pieces += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def test_a_list_of_loggers_runs_them_all(train_run, tmp_path):
    run_dir, _ = train_run("logger=[csv,tensorboard]", "debug=fast")
    assert (run_dir / "csv" / "metrics.csv").is_file() and list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_a_logger_whose_package_is_missing_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    cfg = compose_config("train", tiny(["logger=many"]), tmp_path)
    with pytest.raises(ConfigError, match=r'logger.mlflow \(MLFlowLogger\) needs the mlflow package.*pip install -e "\.\[mlflow\]"'):
        check_config(cfg)


@pytest.mark.slow  # four command lines: CI runs it with -m slow
@pytest.mark.parametrize("choice, written", [
    ("logger=mlflow", "mlflow.db"), ("logger=wandb", "run/wandb"), ("logger=csv", "run/csv/metrics.csv"),
    ("logger=[csv,mlflow]", "run/csv/metrics.csv"),
], ids=["mlflow", "wandb", "csv", "list"])  # fmt: skip
def test_the_readmes_logger_commands_run_as_typed(choice, written, tmp_path, monkeypatch):
    from tests.conftest import run_cli

    monkeypatch.setenv("WANDB_MODE", "offline")
    result = run_cli("src.train", choice, *tiny(["debug=fast"]), f"paths.tracking_dir={tmp_path}", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / written).exists() and json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
