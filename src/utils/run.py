"""Run-directory helpers for the entry points."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.utils.log import get_logger
from src.utils.atomic import write_text

log = get_logger(__name__)
traceback_log = get_logger("src.tracebacks")  # DEBUG records: the run's log file only (conf/hydra/job_logging)
traceback_log.setLevel("DEBUG")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a/b": 1}, lists as strings: the shape TensorBoard's hparams take."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = "null" if value is None else value
        else:
            flat[name] = str(value)
    return flat


def json_ready(value: Any) -> Any:
    """Floats that JSON can hold (NaN -> null), recursively."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@rank_zero_only
def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(json_ready(data), indent=2) + "\n")


@rank_zero_only
def write_resolved_config(cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


HEADLINE_SCORES = ("test/dice", "test/dice_per_image", "test/miou", "test/acc", "test/top5")


def headline(test_metrics: dict[str, float]) -> str:
    """The test scores a run's last lines show: ``Test: test/dice=0.9800  test/miou=...``."""
    return "Test: " + "  ".join(f"{k}={test_metrics[k]:.4f}" for k in HEADLINE_SCORES if k in test_metrics)


STATUS_FILE = "run_status.json"


def resident_memory_mb() -> float | None:
    """This process's resident memory now (Linux), in MiB."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@rank_zero_only  # DDP's other processes re-run the command into the same folder: rank 0 writes it
def claim_for_writing(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run directory that another live process on this host is writing (its
    run_status.json says running): two runs in one folder would interleave their logs and
    overwrite each other's files."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return
    pid = status.get("pid")
    if (status.get("status") == "running" and status.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and process_alive(pid)):  # fmt: skip
        raise ValueError(f"{key}={run_dir}: another process (pid {pid}) is running there now; choose another folder")


def write_status(run_dir: Path, status: str, **details: Any) -> None:
    """run_status.json: running (with the process id and host, to tell a live run from a killed
    one), completed, failed (with the error) or interrupted; src.report reads it. Also the
    process's resident memory at that moment (in a sweep, one process runs every job)."""
    write_json(
        run_dir / STATUS_FILE,
        {"status": status, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
         "memory_mb": resident_memory_mb(), **details},
    )  # fmt: skip


# Errors whose message says what is wrong and what to do: the terminal shows that one line and
# the run's log keeps the traceback. Any other error keeps its traceback on the terminal too.
KNOWN_ERRORS = (ValueError, KeyError, FileNotFoundError, FloatingPointError, PermissionError, NotADirectoryError)
_training_started: set[Path] = set()


def training_starts(run_dir: Path) -> None:
    """Called just before the first training step may change the run's files: a resumed run that
    fails before this leaves its run directory as it found it."""
    _training_started.add(Path(run_dir))


def known_error(error: BaseException) -> BaseException | None:
    """The error to explain in one line (Hydra's InstantiationException unwrapped), or None."""
    cause = error.__cause__ if type(error).__name__ == "InstantiationException" and error.__cause__ else error
    if isinstance(cause, KNOWN_ERRORS) or type(cause).__name__ == "CheckpointWriteError":
        return cause
    return None


def one_line(error: BaseException) -> str:
    """The error's message on one line; for an error re-raised from a DataLoader worker, the
    original message (the last line of the worker's traceback), not the traceback."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    if "Original Traceback" in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        message = last.partition(": ")[2] or last  # "package.ErrorClass: message"
    return " ".join(message.split())


def report_run_dir(entry: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap an entry point so that, success or failure, it says where the run's files are and
    records how the run ended in run_status.json. A known error is logged as one line (its
    traceback goes to the log file only); a resumed run that fails before training starts puts
    back its run_status.json and config.yaml as they were."""

    @functools.wraps(entry)
    def wrapped(cfg: DictConfig) -> Any:
        run_dir = Path(cfg.paths.output_dir)
        started = time.time()
        claim_for_writing(run_dir)
        kept = {name: (run_dir / name).read_bytes() for name in (STATUS_FILE, "config.yaml") if (run_dir / name).is_file()}
        try:
            write_status(run_dir, "running", started=started)
        except OSError as error:
            raise OSError(
                f"cannot write the run directory {run_dir}: {error.strerror or error}. "
                "Choose a writable place with hydra.run.dir=... (or paths.output_dir=...)."
            ) from None
        try:
            result = entry(cfg)
        except (KeyboardInterrupt, SystemExit) as error:
            write_status(run_dir, "interrupted", started=started, error=type(error).__name__)
            log.warning(f"Run interrupted; its log and files are in {run_dir}")
            raise
        except BaseException as error:
            if kept and run_dir not in _training_started:  # a resume refused before it began
                for name, content in kept.items():
                    (run_dir / name).write_bytes(content)
            else:
                write_status(run_dir, "failed", started=started, error=f"{type(error).__name__}: {error}")
            known = known_error(error)
            if known is not None:
                log.error(f"{one_line(known)} (run directory: {run_dir})")
                traceback_log.debug("The traceback of that error:", exc_info=error)
            else:
                log.error(f"Run failed ({type(error).__name__}: {error}); its log and files are in {run_dir}")
            raise
        finally:
            _training_started.discard(run_dir)
        write_status(run_dir, "completed", started=started)
        return result

    return wrapped


@contextlib.contextmanager
def exit_on_bad_input(program: str) -> Iterator[None]:
    """Around a command's work: bad input (a missing or foreign checkpoint, an unknown key, an
    unreadable file) ends in its one-line message (logged: on stderr and in the log file) and
    exit status 1, not a traceback."""
    try:
        yield
    except Exception as error:
        known = known_error(error)  # Hydra's InstantiationException unwrapped: one line, not its block
        if known is None:
            raise
        log.error(f"{program}: {one_line(known)}")
        traceback_log.debug("The traceback of that error:", exc_info=error)
        raise SystemExit(1) from None
