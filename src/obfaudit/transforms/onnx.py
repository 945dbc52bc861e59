"""An ONNX graph as a transform, run by onnxruntime on the CPU (nothing is unpickled).

A server that holds the graph can also differentiate it: :meth:`OnnxTransform.differentiate`
converts it to a PyTorch module with onnx2torch (a maintained converter of ONNX operators to
``torch.nn`` modules), checks the module against onnxruntime on the audit's own images, and from
then on the calls that need gradients (the white-box inversions) run through the module, while
what is sent is still what onnxruntime computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from obfaudit.errors import ObfauditError


class OnnxTransform:
    """Runs an exported obfuscator: one float input ``(batch, C, H, W)``, one output.

    The batch dimension may be dynamic; the other input dimensions are checked against
    the data with :meth:`check_input` before any work. Differentiable once :meth:`differentiate`
    has converted it; until then (or when it cannot be converted) attacks that need gradients
    through the transform refuse it.
    """

    differentiable = False
    module: torch.nn.Module | None = None
    """The graph converted to PyTorch, once checked against onnxruntime (see :meth:`differentiate`)."""
    gradients: str = "not converted to PyTorch"
    """How gradients flow through it, or why they do not: for the results."""

    def __init__(self, path: str | Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ObfauditError("ONNX transforms need onnxruntime: pip install 'obfaudit[onnx]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ObfauditError(f"{self.path}: ONNX file not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad graph
            raise ObfauditError(f"{self.path}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ObfauditError(
                f"{self.path}: the graph takes {len(inputs)} inputs; a transform takes one image batch"
            )
        self.input = inputs[0]
        if self.input.type != "tensor(float)":
            raise ObfauditError(
                f"{self.path}: input {self.input.name!r} is {self.input.type}, not tensor(float)"
            )

    def __reduce__(self):
        """Pickled as its path (a session is not picklable): a worker opens the graph itself."""
        return (OnnxTransform, (str(self.path.resolve()),))

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Refuse data of shape (C, H, W) that the graph's input cannot take."""
        declared = list(self.input.shape)
        if len(declared) != 1 + len(shape):
            raise ObfauditError(
                f"{self.path}: input {self.input.name!r} has shape {declared}, "
                f"the images are (batch, {shape})"
            )
        for want, got in zip(declared[1:], shape, strict=True):
            if isinstance(want, int) and want > 0 and want != got:
                raise ObfauditError(
                    f"{self.path}: input {self.input.name!r} takes {declared}, but the images are "
                    f"(batch, {', '.join(map(str, shape))})"
                )

    def differentiate(self, probe: torch.Tensor, *, tolerance: float = 1e-4) -> bool:
        """Convert the graph to PyTorch and check it on ``probe`` (the audit's images): its outputs must
        match onnxruntime's within ``tolerance`` of their largest magnitude. On success the calls that
        track gradients run through the module; either way :attr:`gradients` says what happened."""
        try:
            from onnx2torch import convert
        except ImportError:
            self.gradients = (
                "not converted to PyTorch: onnx2torch is not installed (pip install 'obfaudit[onnx]')"
            )
            return False
        from obfaudit.train import as_float

        probe = as_float(probe).cpu()  # images as the attacks feed them: floats in [0, 1]
        try:
            module, opset = _convert(self.path, convert)
            with torch.no_grad():
                ours = module(probe)
        except Exception as e:  # noqa: BLE001 - an operator or a graph the converter does not handle
            text = str(e).strip().splitlines()
            self.gradients = (
                f"not converted to PyTorch: onnx2torch cannot ({type(e).__name__}: {text[0] if text else ''})"
            )
            return False
        theirs = self(probe)
        if not isinstance(ours, torch.Tensor) or ours.shape != theirs.shape:
            self.gradients = (
                "not converted to PyTorch: the converted module gives another output than the graph"
            )
            return False
        gap = float((ours.float() - theirs).abs().max())
        scale = max(1.0, float(theirs.abs().max()))
        if not gap <= tolerance * scale:
            self.gradients = (
                f"not converted to PyTorch: the converted module differs from onnxruntime by up to {gap:.2g} "
                f"on {len(probe)} of the audit's images"
            )
            return False
        self.module, self.differentiable = module, True
        self.gradients = (
            f"through the graph converted to PyTorch by onnx2torch{opset}, checked against onnxruntime on "
            f"{len(probe)} of the audit's images (largest difference {gap:.1g})"
        )
        return True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.module is not None and torch.is_grad_enabled() and x.requires_grad:
            return self.module.to(x.device)(x)  # an attack differentiates what is sent
        z = self.session.run(
            None, {self.input.name: x.detach().cpu().numpy().astype(np.float32, copy=False)}
        )[0]
        return torch.from_numpy(np.ascontiguousarray(z)).to(x.device)  # onnxruntime runs on the CPU


#: Opsets a graph is converted down to when onnx2torch has no converter for one of its operators at the
#: graph's own opset (it follows ONNX more slowly than exporters do: torch 2.14 writes opset 20, whose
#: AveragePool onnx2torch 1.5 does not convert, and opset 17's it does).
OLDER_OPSETS = (17, 13, 11)


def _convert(path: Path, convert) -> tuple[torch.nn.Module, str]:
    """(the module, how it was converted): the graph as it is, else at an older opset."""
    import onnx
    from onnx import version_converter

    graph = onnx.load(str(path))
    try:
        return convert(graph).eval().requires_grad_(False), ""
    except NotImplementedError as first:
        for opset in OLDER_OPSETS:
            try:
                older = version_converter.convert_version(graph, opset)
                return convert(older).eval().requires_grad_(False), f" at opset {opset}"
            except Exception:  # noqa: BLE001 - no adapter to that opset, or still unconverted: try the next
                continue
        raise first


def export_onnx(model: torch.nn.Module, path: str | Path, input_shape: tuple[int, int, int]) -> Path:
    """Export ``model`` with a dynamic batch dimension (input ``x``, output ``z``)."""
    path = Path(path)
    model = model.cpu().eval()
    torch.onnx.export(
        model,
        (torch.zeros(2, *input_shape),),
        str(path),
        input_names=["x"],
        output_names=["z"],
        dynamic_axes={"x": {0: "batch"}, "z": {0: "batch"}},
        dynamo=False,
    )
    return path
