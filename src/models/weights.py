"""Named pretrained weights (torchvision's ImageNet and COCO files) and checked weight loading.

A net takes ``pretrained`` = null or a name it knows ('imagenet', 'coco') and loads those
weights into its encoder itself. A path (a state dict or a seglab checkpoint) is loaded once
the net is built, the same way for every net: src.compose.build_net.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

MAX_LISTED = 8
PRETRAINED_NAMES = ("imagenet", "coco")


def torchvision_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's pretrained state dict, from the torch hub cache or downloaded into it
    (read as plain data only)."""
    try:
        return weights.get_state_dict(progress=True, check_hash=False, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        raise RuntimeError(
            f"could not download the pretrained weights {weights} ({error}). Without network, download\n"
            f"  {weights.url}\non a machine that has it and place the file at\n  {cache}\n"
            "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it), or use model.pretrained=null"
        ) from error


def check_pretrained(pretrained: str | None, allowed: tuple[str, ...], model: str) -> None:
    """Refuse a weights name this net does not have (and a path, which build_net loads)."""
    if pretrained is None or pretrained in allowed:
        return
    if pretrained in PRETRAINED_NAMES:
        options = ", ".join(["null", *allowed, "a path to a state dict"])
        raise ValueError(f"model.pretrained={pretrained!r} is not available for {model}; choose {options}")
    raise ValueError(
        f"model.pretrained={pretrained!r}: a file of weights is loaded after the net is built; build it with "
        "src.compose.build_net (as src.train does), or call load_checked(net, state, source)"
    )


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _fit_problems(wrong_shape: list[str], missing: list[str], extra: list[str], labels: tuple[str, str, str]) -> list[str]:
    """The parts of a does-not-fit message: each non-empty list of layers under its label."""
    return [f"{label}: {_listed(sorted(layers))}" for label, layers in zip(labels, (wrong_shape, missing, extra)) if layers]


def load_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that names the layers that are missing, unexpected or of another shape."""
    own = module.state_dict()
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
        for key in own.keys() & state.keys()
        if state[key].shape != own[key].shape
    ]
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    problems = _fit_problems(wrong_shape, missing, unexpected,
                             ("layers of another shape (file vs model)", "layers the file lacks", "layers the model lacks"))  # fmt: skip
    if problems:
        raise ValueError(
            f"{source} does not fit {type(module).__name__} (another architecture or class count?): "
            + "; ".join(problems)
        )
    module.load_state_dict(state)


# --- encoder weights from a file (model.encoder_weights=<path>) --------------------------------
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
# Wrappers that training code puts around a backbone's names (DDP, torch.compile, smp, timm, seglab).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "encoder.", "backbone.", "net.", "base_model.")
# Classification layers of torchvision / timm backbones: in a file, not in an encoder; skipped.
HEAD_LAYERS = ("fc", "classifier", "head", "heads", "last_linear", "conv_head", "bn2", "global_pool", "pre_logits")
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def is_weights_file(value: object) -> bool:
    """A model.encoder_weights value that names a file (rather than a weights name such as imagenet)."""
    return isinstance(value, str) and (value.endswith(WEIGHT_SUFFIXES) or os.sep in value or Path(value).is_file())


def constructor_arguments(config: dict) -> tuple[dict, str | None, str | None]:
    """A net's config as its constructor takes it, with the weight files it names taken out:
    (arguments, model.pretrained file, model.encoder_weights file). Nets whose constructor takes
    ``encoder_weights`` (smp) keep a weights name (imagenet) there; seglab's nets take files only."""
    config = dict(config)
    weights_file = config.get("pretrained")
    if weights_file is not None and weights_file not in PRETRAINED_NAMES:
        config["pretrained"] = None
    else:
        weights_file = None
    encoder_file = config.get("encoder_weights")
    takes_names = str(config.get("_target_", "")).endswith("SMPNet")
    if is_weights_file(encoder_file):
        config["encoder_weights"] = None
    else:
        encoder_file = None
    if "encoder_weights" in config and not takes_names:
        name = config.pop("encoder_weights")
        if name is not None:
            raise ValueError(f"model.encoder_weights={name!r}: give a path to a .pth, .pt or .safetensors file "
                             "(model.pretrained=imagenet names torchvision's weights)")  # fmt: skip
    return config, weights_file, encoder_file


def read_state_dict(path: str | Path, what: str = "model.encoder_weights") -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (read as plain data only); the weights
    inside training checkpoints ('state_dict', 'model', 'net' entries) are unwrapped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}={path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as error:
            raise ValueError(f"{what}={path}: not a readable safetensors file ({error})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled code refused, damaged files alike
        raise ValueError(f"{what}={path}: not a loadable weights file ({type(error).__name__}: {error})") from None
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in ("state_dict", "model", "net", "module") if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    if not tensors:
        raise ValueError(f"{what}={path}: holds no tensors (expected a state dict, or a checkpoint holding one)")
    return tensors


def _canonical(key: str) -> str:
    """A layer name without the wrappers training code adds around a backbone."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _adapt_input_channels(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """An RGB first-conv kernel averaged for another number of input channels (as adapt_first_conv)."""
    if tensor.ndim == 4 and len(shape) == 4 and tensor.shape[1] == 3 and tensor.shape[0] == shape[0] and tensor.shape[2:] == shape[2:]:
        return tensor.mean(dim=1, keepdim=True).expand(shape).clone()
    return None


def load_encoder_weights(net: nn.Module, path: str | Path) -> str:
    """Load a classification backbone's weights (torchvision, timm or smp names, or a seglab
    checkpoint) into the net's encoder: the parts it names in ``encoder_parts``. Layer names are
    matched after wrapper prefixes are stripped on both sides (and the net's ``rename_pretrained``
    for layouts of its own); classifier layers are skipped. A layer of the encoder that the file
    lacks, a layer of another shape, or any other layer of the file is refused by name.
    Returns what was loaded, for the log."""
    parts = tuple(getattr(net, "encoder_parts", ()))
    if not parts:
        raise ValueError(f"model.encoder_weights: {type(net).__name__} has no encoder to load weights into")
    state = read_state_dict(path)
    if all(key.startswith("net.") for key in state):  # a seglab checkpoint: the net's weights
        state = {key[len("net."):]: value for key, value in state.items()}
    # A whole segmentation net's file (seglab's or smp's): keep only its encoder parts.
    tails = tuple(f"{tail}." for part in parts for tail in {part, part.rsplit(".", 1)[-1]})
    if any(key.startswith(tails) for key in state):
        state = {key: value for key, value in state.items() if key.startswith(tails)}
    rename = getattr(net, "rename_pretrained", lambda key: key)
    own = {key: value for key, value in net.state_dict().items() if key.startswith(tuple(p + "." for p in parts))}
    short = (lambda key: key[len(parts[0]) + 1:]) if len(parts) == 1 else (lambda key: key)
    by_canonical = {_canonical(short(key)): key for key in own}
    loaded: dict[str, torch.Tensor] = {}
    skipped, foreign, wrong_shape = [], [], []
    for key, tensor in state.items():
        target = by_canonical.get(_canonical(rename(_canonical(key))))
        if target is None:
            (skipped if _canonical(key).split(".")[0] in HEAD_LAYERS else foreign).append(key)
            continue
        if tensor.shape != own[target].shape:
            adapted = _adapt_input_channels(tensor, own[target].shape)
            if adapted is None and tensor.ndim == 2 and own[target].ndim == 4 and tensor.numel() == own[target].numel():
                adapted = tensor.reshape(own[target].shape)  # a fully connected layer as its convolution (FCN's fc6, fc7)
            if adapted is None:
                wrong_shape.append(f"{key} {tuple(tensor.shape)} vs {target} {tuple(own[target].shape)}")
                continue
            tensor = adapted
        loaded[target] = tensor.to(own[target].dtype)
    missing = sorted(k for k in own.keys() - loaded.keys() if not k.endswith("num_batches_tracked"))
    problems = _fit_problems(wrong_shape, missing, foreign, ("layers of another shape (file vs encoder)",
                             "encoder layers the file lacks", "file layers the encoder lacks"))  # fmt: skip
    if problems:
        raise ValueError(
            f"model.encoder_weights={path} does not fit the encoder of {type(net).__name__} ({', '.join(parts)}; "
            "another architecture?): " + "; ".join(problems)
        )
    net.load_state_dict(loaded, strict=False)
    note = f", skipped {len(skipped)} classifier tensors ({_listed(sorted({k.split('.')[0] for k in skipped}))})" if skipped else ""
    return f"Encoder weights: loaded {len(loaded)} tensors from {path} into net.{', net.'.join(parts)}{note}"
