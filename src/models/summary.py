"""Per-layer model summary: output shape, parameters and multiply-accumulates.

    python -m src.models.summary model=resnet34_unet [data=voc] [input_size=256] [depth=2]

MACs come from torch's own flop counter (torch.utils.flop_counter), as FLOPs / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
import torch
from omegaconf import DictConfig
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import src.utils.resolvers  # noqa: F401  (registers the resolvers conf/ uses)
from src.compose import build_net
from src.utils.log import get_logger, plain_text

log = get_logger(__name__)


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: str
    parameters: int
    trainable: int
    macs: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    parameters: int
    trainable: int
    macs: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def _shape(output) -> str:
    if isinstance(output, torch.Tensor):
        return "x".join(map(str, output.shape))
    if isinstance(output, (list, tuple)):
        return ", ".join(_shape(item) for item in output)
    if isinstance(output, dict):
        return ", ".join(f"{key}: {_shape(value)}" for key, value in output.items())
    return "-"


def parameter_counts(parameters) -> dict[str, int]:
    """{"parameters": all of them, "trainable": those that get gradients} (element counts)."""
    parameters = list(parameters)
    return {"parameters": sum(p.numel() for p in parameters), "trainable": sum(p.numel() for p in parameters if p.requires_grad)}


def summarise(net: nn.Module, input_shape: tuple[int, ...], depth: int = 2) -> ModelSummary:
    """Run one forward pass in eval mode and collect per-module figures down to ``depth``."""
    modules = [(name, module) for name, module in net.named_modules() if name and name.count(".") < depth]
    shapes: dict[str, str] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:  # returns None: a value would replace the output
            shapes.setdefault(name, _shape(output))

        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in modules]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, depth=None) as counter:
            output = net(torch.zeros(input_shape))
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    flops = counter.get_flop_counts()
    prefix = type(net).__name__

    def macs_of(name: str, module: nn.Module) -> int:
        # Containers that are never called themselves (ModuleList) hold their children's work.
        counted = flops.get(f"{prefix}.{name}")
        if counted is not None:
            return sum(counted.values()) // 2
        return sum(macs_of(f"{name}.{child}", sub) for child, sub in module.named_children())

    rows = []
    for name, module in modules:
        params = list(module.parameters())
        rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                output_shape=shapes.get(name, "-"),
                **parameter_counts(params),
                macs=macs_of(name, module),
            )
        )
    all_params = list(net.parameters())
    return ModelSummary(
        rows=rows,
        **parameter_counts(all_params),
        macs=counter.get_total_flops() // 2,
        input_shape=tuple(input_shape),
        output_shape=tuple(output.shape) if isinstance(output, torch.Tensor) else (),
    )


def render(summary: ModelSummary, title: str) -> Table:
    table = Table(title=title, show_footer=True)
    table.add_column("layer", footer="total")
    table.add_column("type")
    table.add_column("output", footer="x".join(map(str, summary.output_shape)))
    table.add_column("params", justify="right", footer=f"{summary.parameters:,}")
    table.add_column("trainable", justify="right", footer=f"{summary.trainable:,}")
    table.add_column("MACs", justify="right", footer=f"{summary.macs / 1e9:.3f} G")
    for row in summary.rows:
        indent = "  " * row.name.count(".")
        table.add_row(
            indent + row.name, row.kind, row.output_shape, f"{row.parameters:,}", f"{row.trainable:,}", f"{row.macs / 1e6:,.1f} M"
        )
    return table


@hydra.main(version_base="1.3", config_path="../../conf", config_name="summary")
def main(cfg: DictConfig) -> None:
    net = build_net(cfg.model)
    shape = (cfg.batch_size, cfg.data.in_channels, cfg.input_size, cfg.input_size)
    summary = summarise(net, shape, cfg.depth)
    title = f"{cfg.model._target_.rsplit('.', 1)[-1]} on {'x'.join(map(str, shape))}"
    log.info(plain_text(render(summary, title), width=140))
    log.info(
        f"parameters: {summary.parameters:,} ({summary.parameters / 1e6:.2f} M), trainable: {summary.trainable:,}, "
        f"MACs: {summary.macs / 1e9:.2f} G"
    )


if __name__ == "__main__":
    main()
