"""torchvision's DeepLabV3 with its last classifier conv replaced for K classes."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import segmentation as tv_segmentation

from src.models.encoders import RESNETS, adapt_first_conv
from src.models.weights import check_pretrained, torchvision_state_dict

BUILDERS = {
    "resnet50": (tv_segmentation.deeplabv3_resnet50, tv_segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "resnet101": (tv_segmentation.deeplabv3_resnet101, tv_segmentation.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
}


class DeepLabV3(nn.Module):
    """``pretrained``: imagenet (backbone only) or coco (torchvision's COCO-with-VOC-labels model).
    ``task.freeze=[net.model.backbone]`` trains only the ASPP head and the new classifier."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 21,
        backbone: str = "resnet50",
        pretrained: str | None = None,
    ):
        super().__init__()
        if backbone not in BUILDERS:
            raise ValueError(f"model.backbone must be one of {sorted(BUILDERS)}, got {backbone!r}")
        check_pretrained(pretrained, ("imagenet", "coco"), "deeplabv3")
        builder, coco_weights = BUILDERS[backbone]
        self.model = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=pretrained == "coco")
        if pretrained == "coco":
            self.model.load_state_dict(torchvision_state_dict(coco_weights))
            self.model.aux_classifier = None
        elif pretrained == "imagenet":
            state = torchvision_state_dict(RESNETS[backbone][1])
            self.model.backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
        self.model.backbone.conv1 = adapt_first_conv(self.model.backbone.conv1, in_channels)
        last = self.model.classifier[-1]
        self.model.classifier[-1] = nn.Conv2d(last.in_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]
