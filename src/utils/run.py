"""The entry points' wrapper (entry_point) and their run-directory helpers."""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.utils.atomic import write_bytes, write_text
from src.utils.checkpoint import CheckpointWriteError
from src.utils.log import get_logger, route_library_logs

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
    """The test scores a run's last lines show, within 80 columns: ``Test: dice=0.9800 miou=...``."""
    return "Test: " + " ".join(f"{k.removeprefix('test/')}={test_metrics[k]:.4f}" for k in HEADLINE_SCORES if k in test_metrics)


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


class RunFolderError(OSError):
    """The run directory cannot be written; the message says which and what to do."""


# Errors whose message says what is wrong and what to do: the terminal shows that one line and
# the run's log keeps the traceback. Any other error keeps its traceback on the terminal too.
KNOWN_ERRORS = (ValueError, KeyError, FileNotFoundError, FloatingPointError, PermissionError, NotADirectoryError,
                CheckpointWriteError, RunFolderError)  # fmt: skip


def known_error(error: BaseException) -> BaseException | None:
    """The error to explain in one line (Hydra's InstantiationException unwrapped), or None."""
    cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
    return cause if isinstance(cause, KNOWN_ERRORS) else None


def one_line(error: BaseException) -> str:
    """The error's message on one line; for an error re-raised from a DataLoader worker, the
    original message (the last line of the worker's traceback), not the traceback."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    if "Original Traceback" in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        message = last.partition(": ")[2] or last  # "package.ErrorClass: message"
    return " ".join(message.split())


KEPT_ON_REFUSAL = (STATUS_FILE, "config.yaml")


def checkpoint_stamps(run_dir: Path) -> dict[str, int]:
    folder = run_dir / "checkpoints"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.ckpt")} if folder.is_dir() else {}


def entry_point(program: str, prepare: Callable[[DictConfig], DictConfig] | None = None):
    """The wrapper of every command (train, eval, predict, export, data check, model summary),
    between @hydra.main and the command's work. It routes library logs into the run's log, claims
    the run directory (Hydra's, or paths.output_dir outside Hydra) and records in run_status.json
    how the run ended. A known error (KNOWN_ERRORS, by class) is one line on the terminal, its
    traceback in the log, exit status 1 (in a sweep, Hydra records the failed job and goes on; called
    outside Hydra, the error is raised). ``prepare`` turns the composed config into the one the work
    runs with (a resume's or an evaluation's, from the checkpoint), inside the same handling.

    A run directory found with a status and config (a resume) whose checkpoints the failed attempt
    did not touch is put back as it was: the refusal changed nothing there."""

    def decorate(work: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
        @functools.wraps(work)
        def wrapped(cfg: DictConfig) -> Any:
            route_library_logs()
            under_hydra = HydraConfig.initialized()
            run_dir = Path(HydraConfig.get().runtime.output_dir if under_hydra else cfg.paths.output_dir)
            started, claimed = time.time(), False
            kept = {name: (run_dir / name).read_bytes() for name in KEPT_ON_REFUSAL if (run_dir / name).is_file()}
            stamps = checkpoint_stamps(run_dir)
            try:
                claim_for_writing(run_dir)
                try:
                    write_status(run_dir, "running", started=started)
                except OSError as error:
                    raise RunFolderError(
                        f"cannot write the run directory {run_dir}: {error.strerror or error}. "
                        "Choose a writable place with hydra.run.dir=...."
                    ) from None
                claimed = True
                result = work(prepare(cfg) if prepare else cfg)
            except BaseException as error:
                interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
                if claimed and kept and not interrupted and checkpoint_stamps(run_dir) == stamps:
                    for name, content in kept.items():
                        write_bytes(run_dir / name, content)
                elif claimed:
                    write_status(run_dir, "interrupted" if interrupted else "failed", started=started, error=f"{type(error).__name__}: {error}")
                known = None if interrupted else known_error(error)
                if known is None:
                    if interrupted:
                        log.warning(f"{program}: interrupted; its log and files are in {run_dir}")
                    else:
                        log.error(f"{program} failed ({type(error).__name__}: {error}); its log and files are in {run_dir}")
                    raise
                log.error(f"{program}: {one_line(known)}")
                traceback_log.debug("The traceback of that error:", exc_info=error)
                if not under_hydra or HydraConfig.get().mode == RunMode.MULTIRUN:
                    raise
                raise SystemExit(1) from None
            write_status(run_dir, "completed", started=started)
            return result

        return wrapped

    return decorate


def command_line(main: Callable[[], Any], prepare_argv: Callable[[list[str]], list[str] | None] | None = None) -> None:
    """``python -m src.X``: ``prepare_argv`` sees the arguments before Hydra composes (a checkpoint's
    config registered, a resume's keys made ``++``); a bad one is one line and exit status 1."""
    if prepare_argv is not None:
        try:
            sys.argv[1:] = prepare_argv(sys.argv[1:]) or sys.argv[1:]
        except KNOWN_ERRORS as error:
            log.error(one_line(error))
            raise SystemExit(1) from None
    main()
