"""Two hand-written transforms that drop Colored-MNIST's colour, to audit beside the learned defences.

``channel_sum`` is the most colour-blind thing an obfuscator whose first layer is linear in the
pixels (ObfNet-MLP's dense layer, ObfNet-CNN's convolution) can compute: a linear map that gives
the same output for red, green and blue digits must weigh the three channels alike, and then it
sends aqua, magenta and yellow digits twice as bright and white ones three times. What it keeps
is how many channels are lit. ``channel_max`` (the digit itself, in grey) has no such trace.

    obfaudit audit --transform examples.colour_blind:channel_sum --out audits/sum
    obfaudit audit --transform examples.colour_blind:channel_max --out audits/max
"""

from __future__ import annotations

import torch


def channel_sum(x: torch.Tensor) -> torch.Tensor:
    """The three channels added: what a colour-invariant linear first layer can at best keep."""
    return x.sum(dim=1, keepdim=True)


def channel_max(x: torch.Tensor) -> torch.Tensor:
    """The brightest channel: each palette colour's is 1, so this is the grey digit, colour gone."""
    return x.amax(dim=1, keepdim=True)
