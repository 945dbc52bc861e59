"""The image prior of the white-box inversions and the reference inverse: total variation.

Natural (and generated) images are mostly smooth: of the many images a transform maps to what was
sent, the one with the least total variation is the likeliest. The inversions minimise the fit to
what was sent plus ``TV_WEIGHT`` times it; the reference inverse picks, per image, the candidate
with the lower sum.
"""

from __future__ import annotations

import torch

#: The weight of the prior in the inversion objective (He et al.'s rMLE, UnSplit).
TV_WEIGHT = 1e-3


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per image (anisotropic TV)."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw
