"""Counterfactuals for ``obfaudit train obfnet --defence invariance --counterfactual MODULE:CALLABLE``.

A counterfactual takes a batch of images (n, C, H, W) in [0, 1] and a target value of the
sensitive attribute per image (n,) and returns the same images with that attribute, all else
unchanged. This is the kind of function a user writes for their own attribute; here, the
background of the generated ``shapes`` dataset (dark or light behind the shape):

    obfaudit train obfnet --infnet m/infnet-cnn-shapes --bottleneck 64 --attribute background \\
        --defence invariance --strength 1000 \\
        --counterfactual examples.counterfactuals:shapes_background --out m/
"""

from __future__ import annotations

import torch

from obfaudit.data.shapes import BACKGROUNDS

LEVELS = torch.tensor(list(BACKGROUNDS.values()))
TOLERANCE = 0.2
"""A pixel is background when every channel lies within this of the image's background level
(the shapes' hues differ from both levels by more than 0.6 in at least one channel)."""


def shapes_background(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``images`` with the background moved to level ``target`` (0 dark, 1 light), noise kept."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    level = border.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)  # the corners and edges are background
    background = ((images - level).abs().amax(dim=1, keepdim=True) < TOLERANCE).to(images.dtype)
    new = LEVELS.to(images.device, images.dtype)[target].view(-1, 1, 1, 1)
    return (images + background * (new - level)).clamp(0, 1)
