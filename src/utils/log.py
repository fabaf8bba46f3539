"""Logging: one logger per module, emitting on rank zero only, so that a DDP run says each thing once.

Hydra configures the handlers (conf/hydra/job_logging/): the console shows the bare messages and
the run's ``<command>.log`` (``train.log``, ``eval.log``) the same lines with time and module.
"""

from __future__ import annotations

import io
import logging
import sys
import warnings

from lightning_utilities.core.rank_zero import rank_zero_only
from rich.console import Console

LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric")


class RankZeroFilter(logging.Filter):
    """Passes records only in the process of global rank 0 (Lightning sets the rank it runs in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0


class BelowLevel(logging.Filter):
    """Passes records below ``level``: the console's stdout takes information, stderr the warnings
    and errors."""

    def __init__(self, level: str | int = logging.WARNING):
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def get_logger(name: str) -> logging.Logger:
    """The module's logger (``get_logger(__name__)``), silent on ranks other than zero."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RankZeroFilter) for f in logger.filters):
        logger.addFilter(RankZeroFilter())
    return logger


def configure_console_logging() -> None:
    """For a command that is not a Hydra app: bare messages, information on stdout and warnings
    and errors on stderr (as conf/hydra/job_logging/console.yaml does for the Hydra apps)."""
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(BelowLevel(logging.WARNING))
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[out, errors], force=True)


def route_library_logs() -> None:
    """Send Lightning's own messages (seed, devices, warnings) through the run's handlers too, so the
    log file holds them: Lightning gives its logger a console handler of its own when imported
    before logging is configured."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # a logger's filters see only its own records
    if not any(isinstance(f, NoAdvertising) for f in tips.filters):
        tips.addFilter(NoAdvertising())
    # On a machine with SLURM installed Lightning warns, for every run started outside a job, that
    # srun is there; seglab sends jobs through hydra/launcher=slurm, which starts them inside one.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
    # Lightning's own pytree helper still asks torch the old way; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class NoAdvertising(logging.Filter):
    """Drops Lightning's tips for its other products ("💡 Tip: ... try installing litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in str(record.msg)


class FileOnly(logging.Filter):
    """Keeps off the console Lightning's lines naming the checkpoint that testing loads (the run's
    summary names it, within 80 columns); the log file still has them."""

    MESSAGES = ("Restoring states from the checkpoint path at ", "Loaded model weights from the checkpoint at ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.MESSAGES)


def plain_text(renderable, width: int = 120) -> str:
    """A rich table (or any renderable) as plain text, for a log line."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(renderable)
    return buffer.getvalue().rstrip("\n")
