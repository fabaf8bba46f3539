"""Settings chosen from the machine: numeric precision."""

from __future__ import annotations

import torch


def bf16_supported(accelerator: str) -> bool:
    """bf16 runs fast here: a CUDA GPU with bf16 (Ampere or later), or, on the CPU, oneDNN's bf16
    kernels (AVX512-BF16 / AMX). Without them CPU autocast emulates bf16 and runs ~15x slower."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if accelerator in ("cpu", "auto"):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def auto_precision(precision: str | int, accelerator: str) -> tuple[str, str]:
    """(Lightning precision, why): ``auto`` becomes bf16-mixed where the hardware runs bf16 fast,
    32-true otherwise; any other value is kept."""
    if str(precision) != "auto":
        return str(precision), "as configured"
    if bf16_supported(accelerator):
        return "bf16-mixed", "auto: the hardware has fast bf16"
    return "32-true", "auto: no fast bf16 on this hardware"
