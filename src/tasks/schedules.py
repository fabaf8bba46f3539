"""Learning-rate schedules that need to know the run's length in steps."""

from __future__ import annotations

import torch


class OneCycle:
    """torch's OneCycleLR over the whole run, stepped every optimizer step: warm up to ``max_lr``
    over ``pct_start`` of the steps, then anneal (cosine) to ``max_lr / (div_factor * final_div_factor)``.
    The task calls it with the run's total steps (Lightning's estimated_stepping_batches)."""

    interval = "step"

    def __init__(self, max_lr: float, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4):
        self.max_lr, self.pct_start, self.div_factor, self.final_div_factor = max_lr, pct_start, div_factor, final_div_factor

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.max_lr, total_steps=max(1, int(total_steps)),
                                                   pct_start=self.pct_start, div_factor=self.div_factor,
                                                   final_div_factor=self.final_div_factor)  # fmt: skip
