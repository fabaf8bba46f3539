"""Seeds derived from the run's seed, so that randomness is a function of (seed, epoch, ...)."""

from __future__ import annotations

import numpy as np


def derived_seed(*parts: int) -> int:
    """A 32-bit seed drawn from a tuple of integers (e.g. seed, epoch, worker)."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1)[0])
