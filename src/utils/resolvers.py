"""OmegaConf resolvers used in conf/ (registered on import, before Hydra composes a config)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf


def count_image_folder_classes(root: str) -> int:
    """The number of classes in an image-classification folder (see src.data.image_folder)."""
    from src.data.image_folder import list_class_images

    return len(list_class_images(Path(root).expanduser()))


_claimed: dict[str, str] = {}


def claim_run_dir(base: str) -> str:
    """A run directory no other process has: ``base`` (outputs/<date>/<time>), or ``base_2``,
    ``base_3``, ... when another run started in the same second. Claimed by creating it (mkdir
    is atomic), once per process: later resolutions of the same name give the same folder."""
    if base not in _claimed:
        Path(base).parent.mkdir(parents=True, exist_ok=True)
        candidate, number = base, 1
        while True:
            try:
                os.mkdir(candidate)
                break
            except FileExistsError:
                number += 1
                candidate = f"{base}_{number}"
        _claimed[base] = candidate
    return _claimed[base]


def count_folder_classes(root: str, classes) -> int:
    """The number of classes of a data=folder dataset: its class list's length (src.data.folder)."""
    from src.data.folder import count_classes

    return count_classes(root, OmegaConf.to_container(classes) if OmegaConf.is_config(classes) else classes)


def count_annotated_classes(kind: str, root: str, classes_or_annotations, category_ids: bool = False) -> int:
    """data.num_classes of data=coco (its categories) and data=labelme (its class list or labels)."""
    from src.data.annotations import count_coco_classes, count_labelme_classes

    value = OmegaConf.to_container(classes_or_annotations) if OmegaConf.is_config(classes_or_annotations) else classes_or_annotations
    return count_coco_classes(root, value, category_ids) if kind == "coco" else count_labelme_classes(root, value)


def wandb_offline() -> bool:
    """logger=wandb runs offline unless this user has logged in (WANDB_API_KEY, or wandb login's
    entry in ~/.netrc), or WANDB_MODE says otherwise."""
    import netrc

    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY") or mode == "online":
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (OSError, netrc.NetrcParseError):
        return True


def checkpoint_run_dir(ckpt_path: str | None, new_run_dir: str) -> str:
    """The run directory a resumed run continues in: the one whose checkpoints/ folder holds
    ``ckpt_path`` (``<run>/checkpoints/last.ckpt``), else a new one claimed under the name
    ``new_run_dir`` (no ckpt_path, or a checkpoint kept somewhere else)."""
    if ckpt_path:
        folder = Path(ckpt_path).expanduser().resolve().parent
        if folder.name == "checkpoints" and (folder.parent / "config.yaml").is_file():
            return str(folder.parent)
    return claim_run_dir(new_run_dir)


def job_cpus(num_workers: int | str) -> int:
    """CPUs for one training process of a cluster job: itself and its loader workers (``auto``:
    as many as src.utils.hardware gives a GPU process, MAX_AUTO_WORKERS)."""
    from src.utils.hardware import MAX_AUTO_WORKERS

    return 1 + (MAX_AUTO_WORKERS if num_workers == "auto" else int(num_workers))


def hydra_subdir(ckpt_path: str | None) -> str:
    """Where Hydra keeps a run's composed config: a resumed run keeps the first one's beside its own."""
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}" if ckpt_path else ".hydra"


OmegaConf.register_new_resolver("image_folder_classes", count_image_folder_classes, replace=True)
OmegaConf.register_new_resolver("folder_classes", count_folder_classes, replace=True)
OmegaConf.register_new_resolver("annotated_classes", count_annotated_classes, replace=True)
OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
OmegaConf.register_new_resolver("job_cpus", job_cpus, replace=True)
OmegaConf.register_new_resolver("checkpoint_run_dir", checkpoint_run_dir, replace=True)
OmegaConf.register_new_resolver("hydra_subdir", hydra_subdir, replace=True)
OmegaConf.register_new_resolver("claim_run_dir", claim_run_dir, replace=True)
