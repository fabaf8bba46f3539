"""How a segmentation task turns images into logits outside training: the one function used by
validation, test, src.eval and src.predict.

``whole`` runs the net on the whole (padded) image; ``slide`` runs it on overlapping windows and
blends their logits (MONAI's sliding_window_inference: windows batched, flat or Gaussian
weights), so large images fit in memory. Test-time augmentation averages the logits of a
horizontal flip and of rescaled copies. Logits always come back at the input's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

MODES = ("whole", "slide")
WEIGHTINGS = ("constant", "gaussian")


@dataclass
class Inference:
    """``mode``: whole | slide. For slide: ``window`` (pixels, square or [h, w]), ``overlap``
    (fraction of a window shared with the next: 0 tiles, 0.5 halves the stride), ``weighting``
    (constant | gaussian: centre pixels of a window count more) and ``batch`` (windows per forward
    pass). ``hflip`` adds the mirrored image; ``scales`` runs the image at each scale (1.0 = as is)."""

    mode: str = "whole"
    window: int | Sequence[int] = 256
    overlap: float = 0.5
    weighting: str = "gaussian"
    batch: int = 4
    hflip: bool = False
    scales: Sequence[float] = field(default_factory=lambda: [1.0])

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"task.inference.mode must be one of {MODES}, got {self.mode!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"task.inference.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"task.inference.overlap must be in [0, 1), got {self.overlap}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"task.inference.scales must be positive numbers, got {list(self.scales)}")
        if self.batch < 1:
            raise ValueError(f"task.inference.batch must be >= 1, got {self.batch}")

    @property
    def window_size(self) -> tuple[int, int]:
        return (self.window, self.window) if isinstance(self.window, int) else (int(self.window[0]), int(self.window[1]))

    def __call__(self, forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """Logits B x K x H x W of ``forward`` (the net) for images B x C x H x W."""
        size = images.shape[-2:]
        total = None
        views = 0
        for scale in self.scales:
            if min(round(size[0] * scale), round(size[1] * scale)) < 1:
                raise ValueError(
                    f"task.inference.scales: {scale} turns a {size[1]}x{size[0]} image into less than one pixel; "
                    "use scales near 1 (e.g. [0.75, 1.0, 1.25])"
                )
            scaled = images if scale == 1 else F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
            for flip in (False, True) if self.hflip else (False,):
                view = scaled.flip(-1) if flip else scaled
                logits = self._one_view(forward, view)
                logits = logits.flip(-1) if flip else logits
                if logits.shape[-2:] != size:
                    logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
                total = logits.float() if total is None else total + logits.float()
                views += 1
        return total / views

    def _one_view(self, forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        if self.mode == "whole":
            return forward(images)
        from monai.inferers import sliding_window_inference  # imported on first use: a second of start-up

        return sliding_window_inference(
            images, self.window_size, self.batch, forward, overlap=self.overlap, mode=self.weighting, padding_mode="constant"
        )


def logits_at_mask_size(logits: torch.Tensor, image_sizes: torch.Tensor, mask_sizes: torch.Tensor, mask_shape) -> torch.Tensor:
    """Each item's logits, cut to its image's own size (batches of mixed sizes are padded),
    resized to its mask's size and padded to the batch's mask shape: how test images are scored
    at their original resolution (data.eval_resolution=original), as the VOC protocol does."""
    out = logits.new_zeros((logits.shape[0], logits.shape[1], *mask_shape))
    for index, ((h, w), (mask_h, mask_w)) in enumerate(zip(image_sizes.tolist(), mask_sizes.tolist())):
        one = logits[index : index + 1, :, :h, :w]
        if (h, w) != (mask_h, mask_w):  # logits, not class ids, are resized: smooth borders
            one = F.interpolate(one.float(), size=(mask_h, mask_w), mode="bilinear", align_corners=False).to(logits.dtype)
        out[index, :, :mask_h, :mask_w] = one[0]
    return out
