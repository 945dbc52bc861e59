"""Transforms that hide nothing, in other shapes than the image: what an audit must call compromised.

An attack's "no leak" means something only where it finds the leak of a transform that keeps
everything. The identity control is one such transform; these keep every pixel too, but send it
in another arrangement, so an attack network that only works on image-shaped tensors is caught out:

    obfaudit audit --transform examples.lossless:scramble --data shapes --attribute background --out a/
    obfaudit audit --transform examples.lossless:unshuffle --data shapes --attribute background --out b/

Each is a fixed function of its input (the permutation is drawn once per image shape, from seed 0),
passes gradients, and is invertible in closed form (:func:`unscramble`, ``pixel_shuffle``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_PERMUTATIONS: dict[tuple[int, int], torch.Tensor] = {}


def _permutation(h: int, w: int) -> torch.Tensor:
    if (h, w) not in _PERMUTATIONS:
        _PERMUTATIONS[(h, w)] = torch.randperm(h * w, generator=torch.Generator().manual_seed(0))
    return _PERMUTATIONS[(h, w)]


def scramble(x: torch.Tensor) -> torch.Tensor:
    """Every pixel moved to a fixed random place (the same for each channel and image): (C, H, W) kept."""
    n, c, h, w = x.shape
    perm = _permutation(h, w).to(x.device)
    return x.flatten(2)[:, :, perm].reshape(n, c, h, w)


def unscramble(z: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`scramble`."""
    n, c, h, w = z.shape
    inverse = torch.argsort(_permutation(h, w)).to(z.device)
    return z.flatten(2)[:, :, inverse].reshape(n, c, h, w)


def unshuffle(x: torch.Tensor) -> torch.Tensor:
    """Space to depth: each 2x2 block of pixels becomes 4 channels, (C, H, W) -> (4C, H/2, W/2)."""
    return F.pixel_unshuffle(x, 2)


def flat(x: torch.Tensor) -> torch.Tensor:
    """The image as one flat vector, its channels reversed: (C, H, W) -> (C*H*W,)."""
    return x.flip(1).flatten(1)
