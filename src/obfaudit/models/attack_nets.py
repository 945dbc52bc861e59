"""The attack networks, sized by what they attack.

The study's attacks are MLPs over the flattened tensor (RecNet: ObfNet-MLP with N = 1024,
ColorNet: InfNet-MLP). That is faithful on 28x28 digits; on larger images a dense layer
over every value is huge (RecNet: 25 M weights at 64x64, 100 M at 128x128) and, trained
for the same budget, cannot even read the raw image back through the identity.

For a spatial tensor (C, H, W) the attacks here are convolutional, after the inverse
networks of the split-inference literature:

- the decoder (RecNet, the eavesdropper's decoder) follows the inverse network of He et al.
  (ACSAC 2019, "Model inversion attacks against collaborative inference"), as GLASS
  (NeurIPS 2023) re-implements it for its "IN" baseline: a stack of stride-2 transposed
  convolutions (kernel 4, padding 1), each followed by batch normalisation and a leaky
  ReLU (slope 0.3), that doubles the resolution until it reaches the image's, with the
  width halving as the resolution grows, and a last 3x3 convolution to the image's
  channels. FORA (CVPR 2024) and SIMBA's supervised decoder are the same pattern. Three
  changes: the width follows the resolution (2048 / side, between 16 and 256) rather than
  a fixed ladder, so the cost per image stays bounded at 64x64 and 128x128 on a CPU, and a
  3x3 convolution block at the input's resolution comes first, so a tensor already at the
  image's size (an obfuscator that keeps the shape) still gets a non-linear decoder (the
  reference has a single layer there); and a linear shortcut (the input resized to the
  image's size, a 1x1 convolution) added to the output, the long skip of residual
  decoders, so the linear part of an inverse is learnt directly (the identity's 64x64
  images: SSIM 0.954 with it, 0.918 without, same training). The output is linear:
  images may live in [0, 1] or in a normalised space. Both networks run in channels-last
  layout, as the study's convolutional networks here: on this CPU a decoder step from a
  (128, 8, 8) tensor took 0.67 s instead of 1.47 s in bfloat16 (the same network).
- the classifier (ColorNet, the adversary's proxy classifiers, the judge) is a small VGG-like
  encoder: 3x3 convolutions with batch normalisation, stride 2 until the map is at most 8
  on a side, then average pooling to at most 4x4 (so where the attribute sits still
  counts), a dense layer of 128 and the classes, with dropout as in InfNet-MLP's role.

Flat vectors, and tensors small enough for a dense layer (up to 3x32x32 values, the study's
scale and CIFAR's), keep the study's MLPs: a dense layer sees every value at once, which is
what an obfuscator's dense output (ObfNet-MLP's, whose layout carries no locality) needs.
``--attack-nets mlp`` keeps the study's networks everywhere (the reproduction's presets do).

Training follows the data (:func:`attack_training`): with ``min_steps``, the epoch cap
rises until the network takes at least that many optimiser steps, so 120 images train
for as many steps as 2,000 (15 epochs of 120 images in batches of 128 are 15 steps), and
early stopping on a 10% hold-out ends it when it has not improved for a tenth of those
steps (at least its patience in epochs). The convolutional
networks train in batches of 32 with a one-cycle learning rate peaking at 3e-3 (PyTorch's
OneCycleLR): at a constant 1e-3 in batches of 128, the decoder of the identity's 64x64
images reached SSIM 0.71 in 15 epochs; with these, 0.95 in 20.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from obfaudit.models._registry import Role, create_model, register_model
from obfaudit.models.small import Flatten, Shape, channels_last
from obfaudit.train_config import ATTACK_NETS, TrainConfig

#: Above this many values, a spatial tensor is attacked by convolutional networks under ``auto``.
DENSE_LIMIT = 3 * 32 * 32


def _width(side: int, lo: int = 16, hi: int = 256) -> int:
    """Channels at a resolution of ``side`` pixels: 2048 / side, between ``lo`` and ``hi``."""
    return int(min(hi, max(lo, 2048 // max(side, 1))))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _block(c_in: int, c_out: int, *, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.3),
    ]


class ConvDecoder(nn.Module):
    """A tensor (C, H, W) back to an image (C', H', W'): transposed convolutions up to its size."""

    def __init__(self, input_shape: Shape, output_shape: Shape) -> None:
        super().__init__()
        c, h, w = input_shape
        c_out, h_out, w_out = output_shape
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)
        ups = max(0, math.ceil(math.log2(max(h_out / h, w_out / w))))
        side = min(h, w)
        layers = _block(c, _width(side))
        for _ in range(ups):
            c_in, side = _width(side), side * 2
            layers += [
                nn.ConvTranspose2d(c_in, _width(side), 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(_width(side)),
                nn.LeakyReLU(0.3),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(_width(side), c_out, 3, padding=1)
        self.skip = nn.Conv2d(c, c_out, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = channels_last(z)
        x = self.body(z)
        x = _resize(x, self.output_shape[1:])  # when the ratio is not a power of two, or the input larger
        return self.head(x) + self.skip(_resize(z, self.output_shape[1:]))


class ConvClassifier(nn.Module):
    """A tensor (C, H, W) -> class logits: stride-2 3x3 convolutions, a 4x4 pooled map, two dense layers."""

    def __init__(self, input_shape: Shape, classes: int, *, hidden: int = 128) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        side = min(h, w)
        width = _width(side, 16, 128) // 2
        layers = _block(c, width)
        while side > 8:
            layers += _block(width, min(2 * width, 256), stride=2)
            width, side, h, w = min(2 * width, 256), (side + 1) // 2, (h + 1) // 2, (w + 1) // 2
        pool = (min(4, h), min(4, w))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool), Flatten())
        self.head = nn.Sequential(
            nn.Linear(width * pool[0] * pool[1], hidden),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(hidden, classes),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(channels_last(x)))


@register_model("recnet_conv", role=Role.ATTACK)
def recnet_conv(*, input_shape: Shape = (3, 64, 64), output_shape: Shape | None = None) -> ConvDecoder:
    """The reconstruction attack's network for spatial tensors (to the input's own shape by default)."""
    return ConvDecoder(tuple(input_shape), tuple(output_shape or input_shape))


@register_model("colornet_conv", role=Role.ATTACK)
def colornet_conv(*, input_shape: Shape = (3, 64, 64), classes: int = 7) -> ConvClassifier:
    """The attribute attack's (and the judge's) network for spatial tensors."""
    return ConvClassifier(tuple(input_shape), classes)


class ConstantNetwork(nn.Module):
    """The same output for every input: what any network trained on inputs that are all alike (a transform
    that sends the same tensor for every image) can at best learn, in closed form: the training targets'
    mean image (the least squared error) or their classes' log frequencies (the majority class)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().float().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.value.to(z.device).expand(len(z), *self.value.shape)


def all_alike(z: torch.Tensor) -> bool:
    """Whether every row of ``z`` is the same tensor (so nothing can be learnt from it)."""
    return len(z) > 0 and bool((z == z[:1]).all())


def is_spatial(shape: tuple[int, ...]) -> bool:
    """A (C, H, W) tensor with at least 2x2 positions."""
    return len(shape) == 3 and shape[1] >= 2 and shape[2] >= 2


def uses_conv(shape: tuple[int, ...], nets: str = "auto") -> bool:
    """Whether the attacks on tensors of ``shape`` are convolutional under ``--attack-nets nets``."""
    if nets not in ATTACK_NETS:
        raise ValueError(f"attack networks must be one of {', '.join(ATTACK_NETS)}, got {nets!r}")
    if nets == "mlp" or not is_spatial(shape):
        return False
    return nets == "conv" or math.prod(shape) > DENSE_LIMIT


def both_fit(shape: tuple[int, ...], nets: str = "auto") -> bool:
    """Whether, under ``--attack-nets nets``, an MLP and a convolutional network are both tried on tensors
    of ``shape`` (``auto`` and a spatial tensor small enough for an MLP): the stronger is kept."""
    return nets == "auto" and is_spatial(shape) and math.prod(shape) <= DENSE_LIMIT


def attack_network(kind: str, input_shape: tuple[int, ...], *, nets: str = "auto", **kwargs) -> nn.Module:
    """The ``kind`` ("recnet" or "colornet") network for inputs of ``input_shape``: convolutional
    or the study's MLP, as :func:`uses_conv` decides; ``kwargs``: ``output_shape`` or ``classes``."""
    name = f"{kind}_conv" if uses_conv(tuple(input_shape), nets) else kind
    return create_model(name, input_shape=tuple(input_shape), **kwargs)


def describe(model: nn.Module) -> dict:
    """What a record says of an attack network: its registered name and parameter count."""
    if isinstance(model, ConstantNetwork):
        return {"arch": "constant", "params": 0}
    spec = getattr(model, "spec", {}) or {}
    return {
        "arch": spec.get("arch", type(model).__name__),
        "params": int(sum(p.numel() for p in model.parameters())),
    }


#: Optimiser settings of the convolutional attack networks (see the module's docstring).
CONV_BATCH, CONV_LR, CONV_PATIENCE = 32, 3e-3, 5
#: The most epochs a small dataset's epoch cap may rise to.
MAX_EPOCHS = 400


def attack_training(config: TrainConfig, n: int, *, conv: bool, min_steps: int | None) -> TrainConfig:
    """``config`` for an attack network trained on ``n`` examples: the convolutional networks' optimiser
    settings when ``conv``, and an epoch cap raised to give at least ``min_steps`` steps."""
    if conv:
        patience = max(config.patience, CONV_PATIENCE) if config.patience else config.patience
        config = replace(config, batch_size=CONV_BATCH, lr=CONV_LR, schedule="onecycle", patience=patience)
    if min_steps:
        kept = n - int(round(n * config.val_fraction)) if config.patience else n
        steps = max(1, math.ceil(kept / config.batch_size))
        config = replace(config, epochs=min(MAX_EPOCHS, max(config.epochs, math.ceil(min_steps / steps))))
        if config.patience:  # and patience, a tenth of those steps: 2 epochs of 2 steps are no plateau
            config = replace(config, patience=max(config.patience, math.ceil(min_steps / 10 / steps)))
    return config
