"""The one cache of decoded splits: ``<cache_dir>/<name>/`` holding images.npy, masks.npy and
names.json, built atomically and memory-mapped when read. Every datamodule that caches uses it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from src.data.splits import SplitArrays

CACHE_FOLDER = ".seglab_cache"  # under the dataset's root, unless data.cache_dir says otherwise


def cache_dir(root: Path, configured: str | None) -> Path:
    """``data.cache_dir`` if set, else ``<root>/.seglab_cache``."""
    return Path(configured).expanduser() if configured else root / CACHE_FOLDER


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
    return SplitArrays(
        np.load(folder / "images.npy", mmap_mode="r"),
        np.load(folder / "masks.npy", mmap_mode="r"),
        json.loads((folder / "names.json").read_text()),
    )


def cached_split(folder: Path, build: Callable[[Path], None]) -> SplitArrays:
    """The split cached in ``folder``; built first by ``build(staging_folder)`` (which writes
    images.npy, masks.npy and names.json there) if there is none yet."""
    cached = load_cached(folder)
    if cached is None:
        with atomic_folder(folder) as staging:
            build(staging)
        cached = load_cached(folder)
    return cached
