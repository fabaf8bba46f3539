"""src.report: one table of a sweep's runs, finished or not."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
from PIL import Image

from src.report import main as report_main
from src.report import write_report
from tests.conftest import run_cli, tiny


@pytest.mark.slow  # command lines: CI runs it with -m slow (the fast suite stays under 10 minutes)
def test_report_of_a_four_run_sweep_lists_every_run_and_the_crashed_ones_as_failed(tmp_path):
    # optimizer.lr=-1 is refused by the config check: two of the four runs crash; Hydra still runs all four.
    sweep = run_cli("src.train", "-m", "debug=fast", *tiny(["optimizer.lr=1e-3,-1", "aug=none,flip"]),
                    "hydra.sweep.dir=sweep", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode != 0  # the sweep says that runs failed
    result = run_cli("src.report", "sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    with (tmp_path / "sweep" / "report.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["run"] for row in rows) == ["0", "1", "2", "3"]
    assert {(row["optimizer.lr"], row["aug"]) for row in rows} == {("0.001", "none"), ("0.001", "flip"), ("-1", "none"), ("-1", "flip")}
    assert "debug" not in rows[0]  # the same in every run
    finished, failed = rows[:2], rows[2:]
    assert [row["state"] for row in finished] == ["completed", "completed"]
    assert float(finished[0]["best val/dice"]) >= float(finished[1]["best val/dice"])  # best first
    for row in finished:
        metrics = json.loads((tmp_path / "sweep" / row["run"] / "metrics.json").read_text())
        assert float(row["test/dice"]) == metrics["test"]["test/dice"]
        assert float(row["wall time (s)"]) > 0 and row["best epoch"] == "1"
    assert [row["state"] for row in failed] == ["failed", "failed"]
    assert all("optimizer.lr must be a number >= 0, got -1" in row["error"] for row in failed)
    assert "| failed |" in (tmp_path / "sweep" / "report.md").read_text()
    assert "| failed |" in result.stdout
    assert Image.open(tmp_path / "sweep" / "report.png").size[1] > 100


def _fake_run(folder, status=None, metrics=None, overrides=()):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "config.yaml").write_text("monitor: val/loss\nmonitor_mode: min\n")
    if status:
        (folder / "run_status.json").write_text(json.dumps({"host": socket.gethostname(), "time": 10.0, "started": 4.0, **status}))
    if metrics:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_report_tells_killed_from_running_runs_and_ranks_by_the_monitor_mode(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    done = lambda score: {"monitor": "val/loss", "best_score": score, "best_epoch": 2, "epochs_completed": 5,  # noqa: E731
                          "fit": {"val/loss": score}, "test": {"test/loss": score}, "wall_time_s": 3.0}  # fmt: skip
    _fake_run(tmp_path / "0", {"status": "completed", "pid": 1}, done(0.5), ["optimizer.lr=0.1"])
    _fake_run(tmp_path / "1", {"status": "completed", "pid": 1}, done(0.2), ["optimizer.lr=0.01"])
    _fake_run(tmp_path / "2", {"status": "running", "pid": int(ended.stdout)}, None, ["optimizer.lr=0.001"])
    _fake_run(tmp_path / "3", {"status": "running", "pid": os.getpid()}, None, ["optimizer.lr=0.0001"])
    text, _ = write_report(tmp_path)
    with (tmp_path / "report.csv").open() as file:
        rows = {row["run"]: row for row in csv.DictReader(file)}
    assert list(rows) == ["1", "0", "2", "3"]  # lower val/loss first, unfinished last
    assert rows["1"]["best epoch"] == "3" and rows["1"]["test/loss"] == "0.2"
    assert rows["2"]["state"] == "killed" and rows["3"]["state"] == "running"
    assert rows["2"]["wall time (s)"] == "6.0"
    assert "optimizer.lr" in text.splitlines()[0]


def test_report_of_a_folder_without_runs_says_what_it_expected(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert f"{tmp_path}: holds no runs" in capsys.readouterr().err


def test_runs_that_differ_only_in_seed_are_reported_as_mean_and_std_per_configuration(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    scores = {}
    for index, (lr, seed) in enumerate((lr, seed) for lr in ("0.001", "0.0003") for seed in (1, 2, 3)):
        dice, test_dice = rng.uniform(0.5, 0.9, 2)
        scores.setdefault(lr, []).append((dice, test_dice))
        metrics = {"monitor": "val/dice", "best_score": dice, "best_epoch": 1, "epochs_completed": 2, "wall_time_s": 1.0,
                   "fit": {"val/dice": dice}, "test": {"test/dice": test_dice}}  # fmt: skip
        _fake_run(tmp_path / str(index), {"status": "completed", "pid": 1}, metrics, [f"optimizer.lr={lr}", f"seed={seed}"])
        (tmp_path / str(index) / "config.yaml").write_text("monitor: val/dice\nmonitor_mode: max\n")
    text, _ = write_report(tmp_path)
    with (tmp_path / "report_seeds.csv").open() as file:
        rows = {row["optimizer.lr"]: row for row in csv.DictReader(file)}
    assert len(rows) == 2 and all(row["n"] == "3" and row["seeds"] == "1 2 3" for row in rows.values())
    for lr, values in scores.items():
        best, test = np.array(values).T
        assert float(rows[lr]["best val/dice mean"]) == pytest.approx(np.mean(best), abs=1e-12)
        assert float(rows[lr]["best val/dice std"]) == pytest.approx(np.std(best, ddof=1), abs=1e-12)
        assert float(rows[lr]["test/dice mean"]) == pytest.approx(np.mean(test), abs=1e-12)
        assert float(rows[lr]["test/dice std"]) == pytest.approx(np.std(test, ddof=1), abs=1e-12)
        assert f"{np.mean(test):.4f} ± {np.std(test, ddof=1):.4f}" in text
    first = max(scores, key=lambda lr: np.mean([v[0] for v in scores[lr]]))
    assert list(rows)[0] == first  # best mean first


def test_runs_of_different_monitors_get_a_column_each_and_are_not_ranked_together(tmp_path):
    segmentation = {"monitor": "val/dice", "best_score": 0.6, "best_epoch": 0, "epochs_completed": 1, "wall_time_s": 1.0,
                    "fit": {"val/dice": 0.6}, "test": {"test/dice": 0.6}}  # fmt: skip
    classification = {"monitor": "val/acc", "best_score": 0.9, "best_epoch": 0, "epochs_completed": 1, "wall_time_s": 1.0,
                      "fit": {"val/acc": 0.9}, "test": {"test/acc": 0.9}}  # fmt: skip
    for index, (metrics, task) in enumerate([(segmentation, "segmentation"), (dict(segmentation, best_score=0.7), "segmentation"),
                                             (classification, "classification")]):  # fmt: skip
        _fake_run(tmp_path / str(index), {"status": "completed", "pid": 1}, metrics, [f"task={task}", f"seed={index}"])
        (tmp_path / str(index) / "config.yaml").write_text(f"monitor: {metrics['monitor']}\nmonitor_mode: max\n")
    text, _ = write_report(tmp_path)
    with (tmp_path / "report.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["run"] for row in rows] == ["1", "0", "2"]  # val/dice runs ranked, then the val/acc one
    assert rows[2]["best val/acc"] == "0.9" and rows[2]["best val/dice"] == ""
    assert rows[0]["best val/dice"] == "0.7" and rows[0]["best val/acc"] == ""
    assert "then the runs that monitor val/acc" in (tmp_path / "report.md").read_text()


def test_report_seeds_csv_keeps_a_score_that_the_first_configuration_lacks(tmp_path):
    for index, (lr, seed) in enumerate((lr, seed) for lr in ("0.1", "0.2") for seed in (1, 2)):
        test = {"test/acc": 0.5} if lr == "0.1" else {"test/acc": 0.6, "test/top5": 0.7}
        metrics = {"monitor": "val/acc", "best_score": 0.5, "best_epoch": 0, "epochs_completed": 1, "wall_time_s": 1.0,
                   "fit": {"val/acc": 0.5}, "test": test}  # fmt: skip
        _fake_run(tmp_path / str(index), {"status": "completed", "pid": 1}, metrics, [f"optimizer.lr={lr}", f"seed={seed}"])
    write_report(tmp_path)
    with (tmp_path / "report_seeds.csv").open() as file:
        rows = {row["optimizer.lr"]: row for row in csv.DictReader(file)}
    assert float(rows["0.2"]["test/top5 mean"]) == pytest.approx(0.7) and rows["0.1"]["test/top5 mean"] == ""
