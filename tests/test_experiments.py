"""Every experiment config composes to the recipe its header documents and runs with debug=fast."""

import json

import pytest
import torch
from omegaconf import OmegaConf

import src.utils.resolvers  # noqa: F401  (the resolvers conf/ uses)
from tests.conftest import TINY, compose_config
from tests.fixtures import make_cifar, make_image_folder, make_pets, make_satellite, make_voc

DATA = {
    "pets": make_pets,
    "voc": make_voc,
    "satellite": make_satellite,
    "cifar": lambda root: make_cifar(root, per_batch=60),  # ~6 horses a batch
    "folder": make_image_folder,
}
FROZEN_BEFORE_LAYER3 = ["net.encoder.conv1", "net.encoder.bn1", "net.encoder.layer1", "net.encoder.layer2"]
# experiment -> (fixture, recipe values from the issue and the config's header)
EXPERIMENTS = {
    "pets_unet": ("pets", {"model._target_": "src.models.unet.UNet", "optimizer._target_": "torch.optim.AdamW",
                           "optimizer.lr": 1e-4, "data.batch_size": 15, "trainer.max_epochs": 60, "data.n_aug": 1,
                           "data.aug._target_": "src.data.transforms.RandomAugmentation",
                           "callbacks.early_stopping.patience": 7}),
    "pets_resnet34_unet": ("pets", {"model._target_": "src.models.resnet_unet.ResNetUNet", "model.encoder": "resnet34", "optimizer.lr": 1e-3,
                                    "optimizer._target_": "torch.optim.AdamW", "data.batch_size": 15,
                                    "trainer.max_epochs": 60, "data.n_aug": 1, "callbacks.early_stopping.patience": 7}),
    "voc_unet": ("voc", {"model._target_": "src.models.unet.UNet", "data.num_classes": 22, "model.num_classes": 22,
                         "optimizer._target_": "torch.optim.Adam", "loss._target_": "src.losses.CrossEntropyLoss"}),
    "voc_resnet50_unet": ("voc", {"model._target_": "src.models.resnet_unet.ResNetUNet", "model.encoder": "resnet50", "model.num_classes": 22,
                                  "optimizer._target_": "torch.optim.Adam", "loss._target_": "src.losses.CrossEntropyLoss"}),
    "satellite_fcn32s": ("satellite", {"model._target_": "src.models.fcn.FCN32s", "data.num_classes": 7, "monitor": "val/miou"}),
    "satellite_fcn8s": ("satellite", {"model._target_": "src.models.fcn.FCN8s", "data.num_classes": 7, "monitor": "val/miou"}),
    "colour_pool": ("cifar", {"model._target_": "src.models.colour.PoolUpsampleNet", "data.classes": ["horse"],
                              "data.num_classes": 24, "trainer.max_epochs": 25}),
    "colour_transpose": ("cifar", {"model._target_": "src.models.colour.ConvTransposeNet", "data.classes": ["horse"],
                                   "data.num_classes": 24, "trainer.max_epochs": 25}),
    "colour_unet": ("cifar", {"model._target_": "src.models.colour.ColourUNet", "data.classes": ["horse"],
                              "data.num_classes": 24, "trainer.max_epochs": 25}),
    "deeplab_finetune": ("pets", {"model._target_": "src.models.deeplab.DeepLabV3", "model.num_classes": 1,
                                  "task.freeze": ["net.model.backbone"]}),
    "classify_resnet50": ("folder", {"model._target_": "src.models.classifier.ResNetClassifier",
                                     "model.encoder": "resnet50", "task.freeze": FROZEN_BEFORE_LAYER3, "monitor": "val/acc"}),
}  # fmt: skip


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_config_composes_to_its_recipe_and_runs_fast(experiment, tmp_path):
    from src.train import train

    fixture, recipe = EXPERIMENTS[experiment]
    root = DATA[fixture](tmp_path / fixture)
    recipe_cfg = compose_config("train", [f"experiment={experiment}", f"data.root={root}"], tmp_path / "unused")
    for key, expected in recipe.items():
        value = OmegaConf.select(recipe_cfg, key)
        assert (OmegaConf.to_object(value) if OmegaConf.is_config(value) else value) == expected, key

    overrides = TINY + [f"experiment={experiment}", f"data.root={root}", "debug=fast", "data.num_workers=0"]
    if "pretrained" in recipe_cfg.model:
        overrides.append("model.pretrained=null")  # no downloads here
    if "fcn" in experiment:  # FCNs score at 1/32; a narrow fc6/fc7 (102M parameters at 4096)
        overrides += ["data.image_size=64", "model.fc_channels=64"]
    run_dir = tmp_path / "run"
    cfg = compose_config("train", overrides, run_dir)
    train(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["monitor"] == recipe_cfg.monitor and metrics["best_score"] is not None
    assert metrics["test"], "the test split was run"
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert state["seglab_config"]["model"]["_target_"] == recipe["model._target_"]
