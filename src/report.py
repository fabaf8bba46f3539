"""Compare the runs of a sweep: `python -m src.report multirun/<date>/<time> [--output DIR]`;
compare two runs on the same test images: `python -m src.report --compare RUN_A RUN_B [--metric miou]`.

A plain argparse command, not a Hydra app: it reads finished run folders and makes no run of
its own, so it has no config to compose and no run directory to log into.

Writes report.md, report.csv and report.png (a bar chart of each run's best monitored score and
its test counterpart) into the sweep directory, and prints the table. A row per run: the
overrides that differ between runs, how the run ended, best epoch, final val and test scores
and wall time, sorted by the monitored metric; runs that failed, were killed or are still
running are listed below the finished ones with their state, never dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.utils.bootstrap import paired_comparison, read_per_image
from src.utils.overrides import split_override
from src.utils.log import configure_console_logging, get_logger
from src.utils.run import STATUS_FILE, process_alive
from src.utils.atomic import replacing, save_figure, write_text

log = get_logger(__name__)

# The scores a row shows, for val (final epoch) and test, where the runs logged them.
SCORES = ("dice", "dice_per_image", "miou", "acc", "top5", "loss")


@dataclass
class Run:
    name: str
    path: Path
    overrides: dict[str, str]
    state: str  # completed, failed, interrupted, killed, running, incomplete
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    monitor: str | None = None
    monitor_mode: str = "max"
    wall_time_s: float | None = None

    @property
    def best(self) -> float | None:
        return self.metrics.get("best_score")


class Unreadable(dict):
    """A JSON file that is there but cannot be parsed (cut off by a full disk or a copy)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return Unreadable(error=f"{path.name} is unreadable ({error})")


def _state(status: dict[str, Any] | None, metrics: dict[str, Any] | None) -> tuple[str, str]:
    if isinstance(metrics, Unreadable):
        return "incomplete", metrics["error"]
    if isinstance(status, Unreadable):
        return ("completed", "") if metrics is not None else ("incomplete", status["error"])
    if status is None:
        return ("completed", "") if metrics is not None else ("incomplete", "no run_status.json or metrics.json")
    state = status.get("status", "incomplete")
    if state == "running" and status.get("host") == socket.gethostname() and not process_alive(int(status["pid"])):
        return "killed", f"process {status['pid']} ended without finishing the run"
    if state == "completed" and metrics is None:
        return "incomplete", "finished without metrics.json"
    return state, status.get("error", "")


def read_run(path: Path) -> Run:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    config_file = path / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    status = _read_json(path / STATUS_FILE)
    metrics = _read_json(path / "metrics.json")
    state, error = _state(status, metrics)
    wall_time = (metrics or {}).get("wall_time_s")
    if wall_time is None and status and "started" in status:
        wall_time = round(float(status["time"]) - float(status["started"]), 2)
    return Run(
        name=path.name,
        path=path,
        overrides={key: value or "" for key, value in map(split_override, overrides or [])},
        state=state,
        error=error,
        metrics=metrics or {},
        monitor=(metrics or {}).get("monitor") or config.get("monitor"),
        monitor_mode=config.get("monitor_mode", "max"),
        wall_time_s=wall_time,
    )


def find_runs(sweep_dir: Path) -> list[Run]:
    """Every run directory of a sweep (its numbered subfolders), or the folder itself if it is one run."""
    def is_run(folder: Path) -> bool:
        return any((folder / marker).exists() for marker in (".hydra", "config.yaml", STATUS_FILE))

    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such directory (give the folder a sweep printed, multirun/<date>/<time>)")
    folders = [sweep_dir] if is_run(sweep_dir) else [p for p in sweep_dir.iterdir() if p.is_dir() and is_run(p)]
    if not folders:
        raise FileNotFoundError(f"{sweep_dir}: holds no runs (expected numbered run folders, as in multirun/<date>/<time>/0)")
    order = lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)  # noqa: E731
    return [read_run(folder) for folder in sorted(folders, key=order)]


def differing_overrides(runs: list[Run]) -> list[str]:
    """The override keys whose value is not the same in every run, in first-seen order."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def monitors_of(runs: list[Run]) -> list[str]:
    """The monitored metrics of the runs, the most common first (a sweep over tasks has several)."""
    return [name for name, _ in Counter(run.monitor for run in runs if run.monitor).most_common()]


def ranked(runs: list[Run], monitors: list[str]) -> list[Run]:
    """Finished runs by their best monitored score (mode from their config), the runs of the most
    common monitor first, then those of each other monitor; runs without a score last. Scores
    of different monitors (val/dice, val/acc) are never ranked against each other."""

    def key(run: Run) -> tuple:
        if run.best is None or run.monitor not in monitors:
            return (len(monitors), 0.0, run.name)
        return (monitors.index(run.monitor), -run.best if run.monitor_mode == "max" else run.best, run.name)

    return sorted(runs, key=key)


def table(runs: list[Run]) -> tuple[list[str], list[dict[str, Any]], str | None]:
    """(columns, rows, monitor) of the report, rows ranked best first: a "best <monitor>" column
    for each monitor the runs used, each run's score in its own monitor's column."""
    monitors = monitors_of(runs)
    monitor = monitors[0] if monitors else None
    keys = differing_overrides(runs)
    logged = {name for run in runs for part in ("fit", "test") for name in run.metrics.get(part, {})}
    scores = [f"{split}/{score}" for split in ("val", "test") for score in SCORES if f"{split}/{score}" in logged]
    best_columns = [f"best {name}" for name in monitors] or [f"best {monitor}"]
    columns = ["run", "state", *keys, *best_columns, "best epoch", "epochs", *scores, "wall time (s)", "error"]
    rows = []
    for run in ranked(runs, monitors):
        values = {**run.metrics.get("fit", {}), **run.metrics.get("test", {})}
        best_epoch = run.metrics.get("best_epoch")
        rows.append({
            "run": run.name,
            "state": run.state,
            **{key: run.overrides.get(key, "") for key in keys},
            **{column: run.best if column == f"best {run.monitor}" else None for column in best_columns},
            "best epoch": None if best_epoch is None else best_epoch + 1,  # counted from 1, like "epochs"
            "epochs": run.metrics.get("epochs_completed"),
            **{name: values.get(name) for name in scores},
            "wall time (s)": run.wall_time_s,
            "error": run.error,
        })
    if not any(row["error"] for row in rows):
        columns.remove("error")
    return columns, rows, monitor


def replicates(runs: list[Run], monitor: str | None) -> tuple[list[str], list[dict[str, Any]]] | None:
    """Runs that differ only in ``seed`` are replicates of one configuration: one row per
    configuration with n and, per score, (mean, sample standard deviation, n) over its completed
    runs, best mean first. None when no configuration was run with more than one seed."""
    keys = differing_overrides(runs)
    if "seed" not in keys:
        return None
    config_keys = [key for key in keys if key != "seed"]
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.state == "completed":
            groups.setdefault(tuple(run.overrides.get(key, "") for key in config_keys), []).append(run)
    if not any(len(members) > 1 for members in groups.values()):
        return None
    logged = {name for run in runs for part in ("fit", "test") for name in run.metrics.get(part, {})}
    scores = [f"best {monitor}", *(f"{split}/{score}" for split in ("val", "test") for score in SCORES if f"{split}/{score}" in logged)]
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {**dict(zip(config_keys, key)), "n": len(members), "seeds": " ".join(m.overrides.get("seed", "") for m in members)}
        for score in scores:
            values = [run.best if score.startswith("best ") else {**run.metrics.get("fit", {}), **run.metrics.get("test", {})}.get(score)
                      for run in members]  # fmt: skip
            values = [float(v) for v in values if v is not None]
            row[score] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)) if values else None
        rows.append(row)
    mode = runs[0].monitor_mode if runs else "max"
    best = lambda row: row[f"best {monitor}"][0] if row[f"best {monitor}"] else float("nan")  # noqa: E731
    rows.sort(key=lambda row: (math.isnan(best(row)), -best(row) if mode == "max" else best(row)))
    return [*config_keys, "n", "seeds", *scores], rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):  # (mean, std, n) of replicates
        return f"{value[0]:.4f} ± {value[1]:.4f}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(columns: list[str], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[dict[str, Any]], keys: list[str], monitor: str | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test_name = monitor.replace("val/", "test/", 1) if monitor else None
    labels = [f"{row['run']}: " + (", ".join(f"{key}={row[key]}" for key in keys) or "run") for row in rows]
    best = [row.get(f"best {monitor}") for row in rows]
    test = [row.get(test_name) for row in rows]
    positions = range(len(rows))
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)))
    axes.barh([p - 0.2 for p in positions], [b or 0.0 for b in best], height=0.4, label=f"best {monitor}")
    if any(t is not None for t in test):
        axes.barh([p + 0.2 for p in positions], [t or 0.0 for t in test], height=0.4, label=test_name)
    for position, row in zip(positions, rows):
        if row["state"] != "completed":
            axes.text(0.0, position, f"  {row['state']}", va="center", color="crimson")
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()  # best at the top
    axes.set_xlabel(monitor or "score")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)


def write_report(sweep_dir: Path, output_dir: Path | None = None) -> tuple[str, Path]:
    """Write report.md, report.csv and report.png; return (the Markdown table, the output folder)."""
    runs = find_runs(sweep_dir)
    columns, rows, monitor = table(runs)
    output_dir = output_dir or sweep_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(columns, rows)
    grouped = replicates(runs, monitor)
    if grouped is not None:  # seeds as replicates: mean ± sample std per configuration, as papers report
        group_columns, group_rows = grouped
        text = ("Mean ± standard deviation (sample, n - 1) over seeds, per configuration:\n\n" + markdown(group_columns, group_rows)
                + "\nEvery run:\n\n" + text)  # fmt: skip
        with replacing(output_dir / "report_seeds.csv") as temporary, temporary.open("w", newline="") as file:
            # A score column is one that any group has (mean, std, n) in: a score the first group lacks is still written.
            score_columns = [c for c in group_columns if any(isinstance(row.get(c), tuple) for row in group_rows)]
            columns_out = [c for c in group_columns if c not in score_columns]
            for c in score_columns:
                columns_out += [f"{c} mean", f"{c} std"]
            writer = csv.DictWriter(file, fieldnames=columns_out, extrasaction="ignore")
            writer.writeheader()
            for row in group_rows:
                flat = {k: v for k, v in row.items() if not isinstance(v, tuple)}
                for k, v in row.items():
                    if isinstance(v, tuple):
                        flat[f"{k} mean"], flat[f"{k} std"] = v[0], v[1]
                writer.writerow(flat)
    others = monitors_of(runs)[1:]
    ranking = f"Ranked by {monitor}" + (f"; then the runs that monitor {', '.join(others)}, each ranked by its own" if others else "")
    write_text(output_dir / "report.md", f"# Sweep {sweep_dir}\n\n{ranking}.\n\n" + text)
    with replacing(output_dir / "report.csv") as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    bar_chart(rows, differing_overrides(runs), monitor, output_dir / "report.png")
    return text, output_dir


def compare(run_a: Path, run_b: Path, metric: str | None) -> int:
    """Log (and write beside nothing: it reads only) the paired comparison of two runs."""
    try:
        a, b = read_per_image(run_a), read_per_image(run_b)
        metric = metric or ("miou" if a.has("miou") and b.has("miou") and any(k.startswith("iou_") for k in a.columns) else "dice")
        result = paired_comparison(a, b, metric)
    except (FileNotFoundError, ValueError) as error:
        log.error(f"error: {error}")
        return 2
    log.info(result.sentence(str(run_a), str(run_b)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a multirun directory, e.g. multirun/2026-11-24/10-00-00")
    parser.add_argument("--output", type=Path, default=None, help="where to write the report (default: the sweep directory)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="paired difference B - A of two runs' per-image test scores, with a 95%% paired-bootstrap interval")  # fmt: skip
    parser.add_argument("--metric", default=None, help="with --compare: dice (Dice per image), iou, acc or miou "
                        "(dataset-level); default miou for multi-class runs, dice for binary ones")  # fmt: skip
    args = parser.parse_args(argv)
    configure_console_logging()
    if args.compare:
        return compare(*args.compare, args.metric)
    if args.sweep_dir is None:
        parser.error("give a sweep directory, or --compare RUN_A RUN_B")
    try:
        text, output_dir = write_report(args.sweep_dir, args.output)
    except FileNotFoundError as error:
        log.error(f"error: {error}")
        return 2
    log.info(text)
    log.info(f"Written: {output_dir / 'report.md'}, report.csv, report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
