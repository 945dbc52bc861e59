"""The transform type, the two controls, and applying a transform on the run's device."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from obfaudit.errors import ObfauditError
from obfaudit.train import as_float, fill_rows, inference_batch

#: A transformation under audit: any callable from a batch of images to a batch of tensors.
Transform = Callable[[torch.Tensor], torch.Tensor]


class IdentityTransform(nn.Module):
    """Control: sends the image itself (leaks everything)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NullTransform(nn.Module):
    """Control: sends zeros of the same shape (keeps nothing). Computed as ``x * 0``, so gradient
    attacks run through it too and find nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0


CONTROLS: dict[str, Callable[[], nn.Module]] = {
    "identity": IdentityTransform,
    "null": NullTransform,
}


def to_device(transform: Transform, device: str | torch.device) -> Transform:
    """``transform`` ready to take inputs on ``device``: a module is moved there, in eval mode.

    A plain callable is returned as it is: it receives its inputs on ``device`` and must
    handle them there itself.
    """
    if isinstance(transform, nn.Module):
        transform.to(device).eval()
    return transform


class TransformError(ObfauditError):
    """A transform under audit failed or returned something that is not a batch of tensors."""


class CheckedTransform:
    """A user's transform, called so that each of its failures is one line naming it.

    It may raise, return the wrong number of rows, a numpy array (accepted, converted),
    NaN or Inf, or print to stdout (sent to stderr instead, so ``--json`` stays parseable).
    The original exception stays chained for ``--debug``.
    """

    def __init__(self, transform: Transform, name: str) -> None:
        self.transform = transform
        self.name = name
        self.numpy_output = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                z = self.transform(x)
        except ObfauditError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of user code is reported the same way
            raise TransformError(
                f"transform {self.name} failed on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {e}"
            ) from e
        self.numpy_output = isinstance(z, np.ndarray)
        if self.numpy_output:
            z = torch.from_numpy(np.ascontiguousarray(z))
        if not isinstance(z, torch.Tensor):
            raise TransformError(f"transform {self.name} returned {type(z).__name__}, not a tensor")
        if z.ndim == 1 and len(z) == len(x):  # one number per image: a row of one
            z = z.unsqueeze(1)
        if z.ndim == 0 or len(z) != len(x):
            raise TransformError(
                f"transform {self.name} returned {tuple(z.shape)} for a batch of {len(x)} images: "
                "it must return one row per image"
            )
        if z.is_floating_point() and not bool(torch.isfinite(z).all()):
            raise TransformError(f"transform {self.name} returned NaN or infinite values")
        return z


@torch.no_grad()
def apply_transform(
    transform: Transform,
    x: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
    desc: str = "transform",
) -> torch.Tensor:
    """``transform`` applied to every image of ``x`` in batches on ``device``; float32 on the CPU.

    ``batch_size`` defaults to :func:`obfaudit.train.inference_batch`. With ``progress``, a bar
    labelled ``desc`` shows the batches (a slow transform is seen).
    """
    from tqdm.auto import tqdm

    batch_size = batch_size or inference_batch(device)
    transform = to_device(transform, device)
    out = None
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2, leave=False, unit="batch"):
        xb = x[i : i + batch_size]
        z = transform(as_float(xb.to(device)))
        if not isinstance(z, torch.Tensor):
            raise TransformError("a transform must map a batch of n images to a batch of n tensors")
        out = fill_rows(out, z.detach(), i, len(xb), len(x), "cpu", error=TransformError)
    return out if out is not None else torch.empty(0)


class Observer:
    """One party's view through the transform: each named input transformed once.

    Only the transformed tensors are kept, never the datasets they came from, so nothing
    reachable from an observer holds images or labels its party was not given.
    """

    def __init__(
        self, transform: Transform, *, device: str | torch.device = "cpu", seed: int | None = None
    ) -> None:
        self.transform = to_device(transform, device)
        self.device = device
        self.seed = seed
        self._views: dict[str, torch.Tensor] = {}

    def __call__(self, key: str, x: torch.Tensor | Callable[[], torch.Tensor]) -> torch.Tensor:
        """The transform of ``x`` (or of what ``x()`` returns, called only the first time),
        remembered under ``key``. With a ``seed``, a random transform draws the same noise for a
        view whenever it is made, whatever ran before (an audit resumed, an attack run alone)."""
        if key not in self._views:
            if self.seed is not None:
                torch.manual_seed(self.seed)
            self._views[key] = apply_transform(self.transform, x() if callable(x) else x, device=self.device)
        return self._views[key]
