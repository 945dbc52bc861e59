"""An ONNX graph as a transform, run by onnxruntime on the CPU (nothing is unpickled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from obfaudit.errors import ObfauditError


class OnnxTransform:
    """Runs an exported obfuscator: one float input ``(batch, C, H, W)``, one output.

    The batch dimension may be dynamic; the other input dimensions are checked against
    the data with :meth:`check_input` before any work. Not differentiable: attacks that
    need gradients through the transform refuse it.
    """

    differentiable = False

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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = self.session.run(
            None, {self.input.name: x.detach().cpu().numpy().astype(np.float32, copy=False)}
        )[0]
        return torch.from_numpy(np.ascontiguousarray(z))


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
