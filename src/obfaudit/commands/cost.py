"""``obfaudit cost``: the study's Table 1 (parameters, FLOPs, size) for any input shape."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from obfaudit.commands._base import Command, Interface, Result, json_option, pick
from obfaudit.commands._options import add


@dataclass(frozen=True, kw_only=True)
class CostQuery:
    """Settings of ``obfaudit cost``."""

    input: tuple[int, int, int] = (3, 224, 224)
    """Input shape as HxWxC."""
    bottleneck: int = 512
    """ObfNet bottleneck N."""
    classes: int = 10
    """ResNet50 classes."""


@dataclass
class CostTable(Result):
    input: list[int]
    bottleneck: int
    rows: list[dict]

    def summary(self) -> str:
        from obfaudit.cost import format_table

        return format_table(self.rows)


def cost(q: CostQuery) -> CostTable:
    """Table 1 (parameters, FLOPs, size) for any input shape."""
    from obfaudit.cost import cost_table

    rows = cost_table(q.input, bottleneck=q.bottleneck, classes=q.classes)
    return CostTable(list(q.input), q.bottleneck, rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(p, CostQuery, ["input", "bottleneck", "classes"], input={"metavar": "HxWxC", "shown": "224x224x3"})
    json_option(p)


def run(args: argparse.Namespace, ui: Interface) -> Result:
    return cost(pick(args, CostQuery))


COMMAND = Command(
    "cost",
    "Table 1: parameters, FLOPs and size of the models",
    "Parameters, FLOPs and float32 size of ResNet50, ObfNet-MLP/CNN, LightNet and DenseNet for an input "
    "shape, beside the study's Table 1 (at 224x224x3, N=512). Models are built on the meta device: no memory "
    "is spent on weights.",
    add_arguments,
    run,
)
