"""Cutting a whole model at a node: what an edge device would send if the model were split there.

A PyTorch module is cut by ``torchvision.models.feature_extraction`` (torch.fx symbolic
tracing): the head up to the node, returning that node's output. An ONNX graph is cut by
``onnx.utils.extract_model`` at a tensor name: a smaller graph from the model's inputs to
that tensor, audited as any ONNX transform. Node names are those the libraries use: a
module's qualified name (``layer1``, ``features.7``) or a traced node
(``layer1.0.relu_1``) for PyTorch, a tensor name for ONNX.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from obfaudit.errors import ObfauditError


class Cut(nn.Module):
    """The head of a model up to one node (a torch.fx graph module), returning that node's output."""

    def __init__(self, extractor: nn.Module, node: str) -> None:
        super().__init__()
        self.extractor, self.node = extractor, node

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["cut"]


def _near(node: str, names: list[str]) -> str:
    close = difflib.get_close_matches(node, names, n=5, cutoff=0.5) or names[:8]
    return ", ".join(close)


def cut_module(model: nn.Module, node: str, *, what: str = "the model") -> Cut:
    """The head of ``model`` (put in eval mode) up to ``node``."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model.eval()
    try:
        extractor = create_feature_extractor(model, return_nodes={node: "cut"})
    except ValueError as e:
        if "not present" not in str(e):
            raise ObfauditError(f"--split {node}: cannot cut {what} there ({e})") from None
        names = get_graph_node_names(model)[1]
        modules = [n for n, _ in model.named_children()]
        raise ObfauditError(
            f"--split {node}: no such node in {what}; near it: {_near(node, modules + names)}"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch.fx cannot trace every model (data-dependent control flow)
        raise ObfauditError(
            f"--split {node}: torch.fx cannot trace {what} ({type(e).__name__}: {e}); export it to ONNX "
            "and cut the graph instead"
        ) from None
    return Cut(extractor.eval(), node)


def cut_onnx(path: Path, node: str, out: Path) -> Path:
    """The graph of ``path`` from its inputs to tensor ``node``, written to ``out``."""
    import onnx
    from onnx.utils import extract_model

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # noqa: BLE001 - any unreadable file: one line
        raise ObfauditError(f"{path}: cannot read the ONNX model ({type(e).__name__}: {e})") from None
    weights = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in weights]
    tensors = [o for n in graph.node for o in n.output]
    if node not in tensors:
        raise ObfauditError(
            f"--split {node}: no tensor of that name in {path.name}; near it: {_near(node, tensors)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        extract_model(str(path), str(out), inputs, [node], check_model=True)
    except Exception as e:  # noqa: BLE001 - onnx's checker or extractor refused the cut
        raise ObfauditError(
            f"--split {node}: cannot cut {path.name} there ({type(e).__name__}: {e})"
        ) from None
    return out


def load_whole_model(source: str, *, seed: int = 0) -> tuple[str, nn.Module]:
    """``MODULE:CALLABLE`` -> (name, the whole model to cut), a factory called under ``seed`` (its random
    weights the same on every run, so a rerun of a sweep keeps what it computed)."""
    from obfaudit.transforms.sources import load_callable, seeded

    name, model = load_callable(source, seed=seed)
    if callable(model) and not isinstance(model, nn.Module):  # a factory with optional arguments
        try:
            with seeded(seed):
                model = model()
        except Exception as e:  # noqa: BLE001 - the user's code: anything can fail
            raise ObfauditError(
                f"--transform {source}: calling it failed ({type(e).__name__}: {e})"
            ) from None
    if not isinstance(model, nn.Module):
        raise ObfauditError(
            f"--transform {source} with --split: give a PyTorch module (MODULE:CALLABLE returning an "
            f"nn.Module) or an .onnx file, not a {type(model).__name__}"
        )
    return name, model


__all__ = ["Cut", "cut_module", "cut_onnx", "load_whole_model"]
