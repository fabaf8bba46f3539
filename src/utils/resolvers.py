"""OmegaConf resolvers used in conf/ (registered on import, before Hydra composes a config)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def count_image_folder_classes(root: str) -> int:
    """The number of classes in an image-classification folder (see src.data.image_folder)."""
    from src.data.image_folder import list_class_images

    return len(list_class_images(Path(root).expanduser()))


OmegaConf.register_new_resolver("image_folder_classes", count_image_folder_classes, replace=True)
