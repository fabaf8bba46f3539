"""Files written whole or not at all: each is written to a hidden temporary file beside its place
and renamed onto it (a rename within a folder is atomic), so a process killed mid-write leaves
the previous file, or none, never a truncated one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (same suffix, so that writers that
    choose the format by it still do); renamed onto ``path`` when the block ends, removed if it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def writable_folder(folder: str | Path, key: str) -> Path:
    """``folder``, created if need be; a place that cannot be written (no permission, a file in the
    way) is refused naming the key that chose it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".seglab_write_probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"{key}={folder}: cannot write there ({error.strerror or error}); choose a writable folder with {key}=...") from None
    return folder


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(data)


def save_image(image: Image.Image | np.ndarray, path: str | Path, **options) -> None:
    with replacing(path) as temporary:
        (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(temporary, **options)


def save_figure(figure, path: str | Path, **options) -> None:
    with replacing(path) as temporary:
        figure.savefig(temporary, **options)
