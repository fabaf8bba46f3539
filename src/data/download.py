"""torchvision's dataset downloaders, with a message that says where to put the files offline."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from src.data.files import DatasetError


def download_with_hint(download: Callable[[], object], dataset: str, root: Path, layout: str) -> None:
    try:
        download()
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise DatasetError(
            f"could not download {dataset} ({error}). Without network, download it elsewhere and place it so "
            f"that {root} holds {layout}; then run with data.download=false"
        ) from error
