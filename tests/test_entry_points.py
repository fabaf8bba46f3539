"""Every command goes through one wrapper (src.utils.run.entry_point): a bad key or a bad file is
one line on stderr and exit status 1, its traceback in the command's log, and run_status.json
says the run failed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

CASES = {
    "train-key": ("src.train", ["data.batch_size=0"], "data.batch_size must be a whole number >= 1, got 0"),
    "train-file": ("src.train", ["data=folder", "data.root={tmp}/no_such_folder"], "no_such_folder"),
    "eval-key": ("src.eval", ["ckpt_path={ckpt}", "task.inference.overlap=1.5"], "overlap"),
    "eval-file": ("src.eval", ["ckpt_path={tmp}/missing.ckpt"], "missing.ckpt: no such checkpoint file"),
    "predict-key": ("src.predict", ["ckpt_path={ckpt}", "input={tmp}", "batch_size=0"], "batch_size must be a whole number >= 1, got 0"),
    "predict-file": ("src.predict", ["ckpt_path={ckpt}", "input={tmp}/no_such_photos"], "no_such_photos"),
    "export-key": ("src.export", ["ckpt_path={ckpt}", "format=tflite"], "format must be one of"),
    "export-file": ("src.export", ["ckpt_path={tmp}/broken.ckpt"], "broken.ckpt: not a loadable checkpoint"),
    "check-key": ("src.data.check", ["data.image_size=0"], "data.image_size must be a whole number >= 1, got 0"),
    "check-file": ("src.data.check", ["data=pets", "data.root={tmp}/no_pets"], "no_pets: no such folder"),
}


@pytest.mark.slow  # ten command lines: CI runs it with -m slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_key_or_file_is_one_line_exit_1_traceback_in_the_log_and_a_failed_status(case, trained_run, tmp_path):
    module, arguments, message = CASES[case]
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    ckpt = trained_run[0] / "checkpoints" / "best.ckpt"
    run_dir = tmp_path / "run"
    arguments = [a.format(tmp=tmp_path, ckpt=ckpt) for a in arguments]
    result = run_cli(module, *arguments, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    errors = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 1 and message in errors[0], result.stderr
    log = (run_dir / f"{module.rsplit('.', 1)[-1]}.log").read_text()
    assert message in log and "Traceback (most recent call last)" in log
    status = json.loads((run_dir / "run_status.json").read_text())
    assert status["status"] == "failed" and status["error"]
