"""The transform type, the two controls, and applying a transform on the run's device."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from obfaudit.train import as_float

#: A transformation under audit: any callable from a batch of images to a batch of tensors.
Transform = Callable[[torch.Tensor], torch.Tensor]


class IdentityTransform(nn.Module):
    """Control: sends the image itself (leaks everything)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NullTransform(nn.Module):
    """Control: sends zeros of the same shape (keeps nothing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


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


@torch.no_grad()
def apply_transform(
    transform: Transform,
    x: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> torch.Tensor:
    """``transform`` applied to every image of ``x`` in batches on ``device``; float32 on the CPU."""
    transform = to_device(transform, device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        z = transform(as_float(xb.to(device)))
        if not isinstance(z, torch.Tensor) or len(z) != len(xb):
            raise ValueError("a transform must map a batch of n images to a batch of n tensors")
        out.append(z.detach().float().cpu())
    return torch.cat(out)


class Observer:
    """One party's view through the transform: each named input transformed once.

    Only the transformed tensors are kept, never the datasets they came from, so nothing
    reachable from an observer holds images or labels its party was not given.
    """

    def __init__(self, transform: Transform, *, device: str | torch.device = "cpu") -> None:
        self.transform = to_device(transform, device)
        self.device = device
        self._views: dict[str, torch.Tensor] = {}

    def __call__(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """The transform of ``x``, remembered under ``key``."""
        if key not in self._views:
            self._views[key] = apply_transform(self.transform, x, device=self.device)
        return self._views[key]
