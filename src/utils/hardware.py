"""Settings chosen from the machine: numeric precision, data-loader workers, when to sync."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

MAX_AUTO_WORKERS = 8  # more rarely helps a loader of cached arrays, and each one holds memory


def bf16_supported(accelerator: str) -> bool:
    """bf16 runs fast here: a CUDA GPU with bf16 (Ampere or later), or, on the CPU, oneDNN's bf16
    kernels (AVX512-BF16 / AMX). Without them CPU autocast emulates bf16 and runs ~15x slower."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if accelerator in ("cpu", "auto"):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def auto_precision(precision: str | int, accelerator: str) -> tuple[str, str]:
    """(Lightning precision, why): ``auto`` becomes bf16-mixed on a GPU with fast bf16, else
    32-true; any other value is kept. Never bf16 on a CPU by itself: how fast it is depends on the
    CPU (measured against fp32: 0.08x with AVX2 only, 0.78x on a CPU where oneDNN reported bf16
    support, 1.34-1.83x with native AVX512-BF16; README, Performance), and a run's numbers should
    not change with the machine it lands on; set ``trainer.precision=bf16-mixed`` to use it."""
    if str(precision) != "auto":
        return str(precision), "as configured"
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() and bf16_supported("gpu"):
        return "bf16-mixed", "auto: the GPU has fast bf16"
    if torch.cuda.is_available() and accelerator in ("gpu", "cuda", "auto"):
        return "32-true", "auto: this GPU has no fast bf16"
    return "32-true", "auto: fp32 on a CPU, where bf16 trained slower"


def logging_step(trainer) -> bool:
    """A step on which the trainer logs (every ``log_every_n_steps``): the steps on which a
    callback may read device values (a sync on a GPU) without slowing the others."""
    return trainer.global_step % max(1, trainer.log_every_n_steps) == 0


def device_description() -> str:
    """The GPU's name, or the CPU (with or without VNNI) and its thread count: where a benchmark ran."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{cpu_description()}, {torch.get_num_threads()} threads"


def cpu_description() -> str:
    """The CPU's name and whether it has VNNI (int8 dot products), which decides how onnxruntime's
    int8 kernels add up (see src/quantize.py); read from /proc/cpuinfo, where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines() if line.startswith("flags")), set())
    vnni = "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else ("AVX2 without VNNI" if "avx2" in flags else "no AVX2")
    return f"{name} ({vnni})"


def usable_cpus() -> int:
    """CPU cores this process may run on (a SLURM job's or container's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_num_workers(num_workers: int | str) -> None:
    if num_workers != "auto" and not (isinstance(num_workers, int) and num_workers >= 0):
        raise ValueError(f"data.num_workers must be 'auto' or a whole number >= 0, got {num_workers!r}")


def loader_workers(num_workers: int | str, processes: int, on_gpu: bool) -> int:
    """Loader worker processes for one training process. An int is kept; ``auto`` shares the
    usable cores between the ``processes`` on this machine (DDP), and of each share keeps one core
    for the training process itself on a GPU, half the share on a CPU (where the training's own
    arithmetic needs the cores): at least 1, at most MAX_AUTO_WORKERS."""
    check_num_workers(num_workers)
    if num_workers != "auto":
        return int(num_workers)
    share = max(1, usable_cpus() // max(1, processes))
    return max(1, min(MAX_AUTO_WORKERS, share - 1 if on_gpu else share // 2))
