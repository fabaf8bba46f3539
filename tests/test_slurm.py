"""A real SLURM cluster of one node on this machine (Debian's slurm-wlm and munge; .ci/run installs
them): a two-run sweep with hydra/launcher=slurm goes through sbatch, both runs write their files,
and the jobs SLURM ran had the CPUs, tasks and time the launcher config asked for."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli, tiny

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 - 2048
    return "\n".join([
        "ClusterName=seglab-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'slurmd.log'}",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", "",
    ])  # fmt: skip


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    """slurmctld and slurmd of a one-node cluster (and munged, if it is not running), stopped afterwards."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    assert not missing, f"{missing} not installed: apt-get install slurm-wlm munge (.ci/run does)"
    folder = tmp_path / "slurm"
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    started = []
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force", f"--pid-file={folder / 'munged.pid'}"], check=True, capture_output=True)
        started.append(folder / "munged.pid")
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon, "-f", str(conf)], check=True, capture_output=True)
        started.append(folder / f"{daemon}.pid")
    try:
        for _ in range(60):  # the node registers with the controller
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        assert state == "idle", f"the SLURM node did not come up ({state!r}): {(folder / 'slurmctld.log').read_text()[-2000:]}"
        yield folder
    finally:
        for pid_file in reversed(started):
            if pid_file.is_file():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@pytest.mark.slow  # starts a SLURM cluster and runs two jobs: CI runs it with -m slow
def test_a_sweep_goes_through_a_real_slurm_cluster_and_both_runs_write_their_files(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "src.train", "-m", "hydra/launcher=slurm", *tiny(["debug=fast", "trainer=cpu", "trainer.devices=1"]),
        "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10",
        "optimizer.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for run in ("0", "1"):
        assert json.loads((sweep / run / "run_status.json").read_text())["status"] == "completed"
        assert json.loads((sweep / run / "metrics.json").read_text())["test"]
        assert (sweep / run / "checkpoints" / "best.ckpt").is_file() and (sweep / run / "train.log").is_file()
    assert {yaml.safe_load((sweep / r / "config.yaml").read_text())["optimizer"]["lr"] for r in ("0", "1")} == {1e-3, 2e-3}
    jobs = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name)  # <array id>_<task>
    assert len(jobs) == 2
    for job in jobs:
        for _ in range(60):  # the job's results are written before slurmd sees its process end
            shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
            if "JobState=RUNNING" not in shown and "JobState=COMPLETING" not in shown:
                break
            time.sleep(0.5)
        assert "JobState=COMPLETED" in shown and "ExitCode=0:0" in shown, shown
        assert "NumCPUs=1 " in shown and "NumTasks=1 " in shown and "TimeLimit=00:10:00" in shown, shown
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --time=10" in script
    print("SLURM jobs:", ", ".join(jobs))
