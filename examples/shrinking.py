"""Transforms with an obvious inverse, to check that an audit is never weaker than it.

    obfaudit audit --transform examples.shrinking:pool4 --data shapes --attribute background --out p/

``pool4`` averages 4x4 blocks (what is sent, upsampled, is the obvious inverse); ``pool4_mix`` then
mixes the three channels by a fixed invertible matrix; ``patch_linear`` maps each 8x8 patch (192
values) to 256 numbers by one random matrix (more outputs than inputs: invertible, by least squares).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIX = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])


def pool4(x: torch.Tensor) -> torch.Tensor:
    """4x4 average pooling: (C, H, W) -> (C, H/4, W/4)."""
    return F.avg_pool2d(x, 4)


def pool4_mix(x: torch.Tensor) -> torch.Tensor:
    """4x4 pooling, then the channels mixed by :data:`MIX`."""
    return torch.einsum("oc,nchw->nohw", MIX.to(x.device), F.avg_pool2d(x, 4))


class PatchLinear(torch.nn.Module):
    """Each ``patch`` x ``patch`` block of the image to ``outputs`` numbers by one random matrix (seeded)."""

    def __init__(self, patch: int = 8, outputs: int = 256, seed: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        inputs = 3 * patch * patch
        self.patch = patch
        self.weight = torch.nn.Parameter(torch.randn(outputs, inputs, generator=g) / inputs**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(x, self.patch, stride=self.patch)  # (n, 3 * patch * patch, patches)
        return torch.einsum("oi,nip->nop", self.weight, patches)


patch_linear = PatchLinear()
