"""The one cache of decoded splits: ``<cache_dir>/<name>/`` holding images.npy, masks.npy and
names.json, built atomically and memory-mapped when read. Every datamodule that caches uses it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import hashlib

import numpy as np

from src.data.files import DatasetError
from src.data.splits import RaggedArrays, SplitArrays
from src.utils.log import get_logger

log = get_logger(__name__)

CACHE_FOLDER = ".seglab_cache"  # under the dataset's root, unless data.cache_dir says otherwise
ADVICE = "Set data.cache_dir to a folder you can write, or data.cache=false to decode every item every epoch."


def user_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seglab"


def usable(folder: Path) -> bool:
    """This process can list, read and write ``folder`` (or create it, if it does not exist), and
    the folder is meant to be written: root passes every access check, so a dataset shipped without
    write bits (a shared, read-only copy) is not written into even by root."""
    def writable(path: Path, mode: int) -> bool:
        return os.access(path, mode) and bool(path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    if folder.exists():
        return writable(folder, os.R_OK | os.W_OK | os.X_OK)
    return writable(folder.parent, os.W_OK | os.X_OK) if folder.parent.exists() else False


def cache_dir(root: Path, configured: str | None) -> Path:
    """``data.cache_dir`` if set, else ``<root>/.seglab_cache``; where that cannot be used (a
    read-only shared dataset, a cache another user built) a folder of this user's own cache,
    ``~/.cache/seglab/<dataset folder>-<hash>``, said once in the log."""
    if configured:
        return Path(configured).expanduser()
    default = root / CACHE_FOLDER
    if usable(default) or not root.exists():
        return default
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    elsewhere = user_cache_root() / f"{root.name}-{digest}"
    log.info(f"{default} cannot be written (a read-only dataset folder, or another user's cache): decoded splits "
             f"are cached in {elsewhere} instead (data.cache_dir sets the place)")  # fmt: skip
    return elsewhere


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a staging folder that becomes ``folder`` only if the block completes, so a half-built
    cache (a crash, a full disk, Ctrl-C) is never read."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        yield staging
        if folder.exists():  # another process built the same cache meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_cached(folder: Path) -> SplitArrays | None:
    """A split cached by atomic_folder (memory-mapped), or None if there is none."""
    if not (folder / "names.json").is_file():
        return None
    return SplitArrays(_load_arrays(folder, "images"), _load_arrays(folder, "masks"), json.loads((folder / "names.json").read_text()))


def _load_arrays(folder: Path, name: str) -> np.ndarray | RaggedArrays:
    if (folder / f"{name}.bin").is_file():
        return RaggedArrays(np.memmap(folder / f"{name}.bin", dtype=np.uint8, mode="r"), np.load(folder / f"{name}_shapes.npy"))
    return np.load(folder / f"{name}.npy", mmap_mode="r")


class RaggedWriter:
    """Writes uint8 arrays of different shapes one after another into ``<name>.bin``, their
    shapes into ``<name>_shapes.npy`` (read back as RaggedArrays)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name, self.shapes = folder, name, []
        self.file = open(folder / f"{name}.bin", "wb")

    def append(self, array: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
        self.shapes.append(array.shape)

    def close(self) -> None:
        self.file.close()
        np.save(self.folder / f"{self.name}_shapes.npy", np.array(self.shapes, dtype=np.int64).reshape(len(self.shapes), -1))


def cached_split(folder: Path, build: Callable[[Path], None]) -> SplitArrays:
    """The split cached in ``folder``; built first by ``build(staging_folder)`` (which writes
    images.npy, masks.npy and names.json there) if there is none yet."""
    try:
        cached = load_cached(folder)
        if cached is None:
            with atomic_folder(folder) as staging:
                build(staging)
            cached = load_cached(folder)
    except PermissionError as error:
        raise DatasetError(f"cannot use the cache {folder}: {error.strerror} ({error.filename}). {ADVICE}") from None
    return cached
