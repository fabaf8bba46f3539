"""Every architecture and encoder of segmentation_models_pytorch (smp) as a seglab net.

smp is a plain nn.Module library (12 architectures, hundreds of timm encoders), so its models fit
seglab's model slot as they are: this wrapper only takes the class count and input channels from
the data like every other net, pads inputs to the architecture's size multiple and crops the
logits back, and turns an offline weights download into a message that says what to do.
"""

from __future__ import annotations

import inspect

from typing import Any

import torch

from src.models.blocks import SizePreserving


def architectures() -> list[str]:
    import segmentation_models_pytorch as smp

    return sorted(model.__name__ for model in smp.MODEL_ARCHITECTURES_MAPPING.values())


class SMPNet(SizePreserving):
    """``arch`` (Unet, UnetPlusPlus, FPN, DeepLabV3Plus, PSPNet, Segformer, UPerNet, ...) on
    ``encoder`` (resnet18, efficientnet-b0, mit_b0, tu-convnext_tiny, ...); ``encoder_weights``
    null or a name smp knows (imagenet, ...); ``encoder_depth`` null for the architecture's own;
    ``options`` passes any other smp argument (decoder_channels, decoder_attention_type, ...).
    Freeze the encoder with ``task.freeze=[net.model.encoder]``; a weights file as
    ``encoder_weights`` is loaded after the net is built (src.compose.build_net)."""

    encoder_parts = ("model.encoder",)

    def __init__(self, in_channels: int = 3, num_classes: int = 2, arch: str = "Unet", encoder: str = "resnet34",
                 encoder_weights: str | None = None, encoder_depth: int | None = None, options: dict[str, Any] | None = None):  # fmt: skip
        super().__init__()
        import segmentation_models_pytorch as smp

        known = {name.lower(): name for name in architectures()}
        if arch.lower() not in known:
            raise ValueError(f"model.arch={arch!r} is no smp architecture; choose one of {sorted(known.values())}")
        if encoder not in smp.encoders.get_encoder_names() and not encoder.startswith("tu-"):
            raise ValueError(f"model.encoder={encoder!r} is no smp encoder (smp.encoders.get_encoder_names(), or tu-<timm name>)")
        settings = dict(options or {})
        if encoder_depth is not None:
            settings["encoder_depth"] = encoder_depth
            default = inspect.signature(getattr(smp, known[arch.lower()]).__init__).parameters.get("decoder_channels")
            if "decoder_channels" not in settings and default is not None and isinstance(default.default, (tuple, list)):
                # U-Net-like decoders take one width per encoder stage: the default's last ones, ending at the same width
                settings["decoder_channels"] = list(default.default)[-encoder_depth:]
        try:
            self.model = smp.create_model(known[arch.lower()], encoder_name=encoder, encoder_weights=encoder_weights,
                                          in_channels=in_channels, classes=num_classes, **settings)  # fmt: skip
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            if encoder_weights is None:
                raise
            if "available options" in str(error).lower():  # a weights name this encoder does not have
                raise ValueError(f"model.encoder_weights={encoder_weights!r}: {error}") from None
            raise RuntimeError(
                f"could not fetch the smp encoder weights model.encoder_weights={encoder_weights!r} for {encoder} "
                f"({type(error).__name__}). smp downloads them from the Hugging Face Hub (repository "
                f"smp-hub/{encoder}.{encoder_weights}); without network, run `huggingface-cli download "
                f"smp-hub/{encoder}.{encoder_weights}` on a machine that has it and copy its Hugging Face cache "
                "(~/.cache/huggingface/hub, or $HF_HOME/hub) to the same place here, or use model.encoder_weights=null"
            ) from None
        self.size_multiple = int(getattr(self.model.encoder, "output_stride", 32))
        self.encoder_name, self.encoder_weights_name = encoder, encoder_weights

    def input_normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """timm's pretrained config for tu- encoders; smp's preprocessing settings for its own."""
        if self.encoder_name.startswith("tu-"):
            config = getattr(self.model.encoder.model, "pretrained_cfg", None) or {}
            return (tuple(config["mean"]), tuple(config["std"])) if "mean" in config and "std" in config else None
        # smp keeps its encoders' settings beside their weights on the Hugging Face Hub: read from
        # the local cache only (no download at build time); without it, seglab's default (ImageNet's).
        import json

        import segmentation_models_pytorch as smp
        from huggingface_hub import hf_hub_download

        settings = smp.encoders.encoders.get(self.encoder_name, {}).get("pretrained_settings", {})
        source = settings.get(self.encoder_weights_name or "imagenet")
        try:
            path = hf_hub_download(source["repo_id"], "config.json", revision=source["revision"], local_files_only=True)
            params = json.loads(open(path).read())
        except Exception:  # not cached, or no such settings: nothing known
            return None
        if list(params.get("input_range", [0, 1]))[1] != 1 or params.get("mean") is None:
            return None
        return tuple(params["mean"]), tuple(params["std"])

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
